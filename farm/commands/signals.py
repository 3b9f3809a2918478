"""SIGTERM and SIGHUP end a command the way Ctrl-C does: every ``finally`` runs, so a private
farm is stopped instead of left running under PID 1 (what `timeout`, CI runners and a closed
terminal send)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """Raised in the main thread by a stop signal; like KeyboardInterrupt, no ``except Exception`` takes it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, a stop signal raises ``Stopped`` (once: later ones wait for the cleanup)."""
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in STOP_SIGNALS}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_received: list[int] = []


def received() -> int | None:
    """The stop signal this process got, if any (whatever error the stop then caused)."""
    return _received[0] if _received else None


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    """Ctrl-C as Python's own handler answers it, remembered like the stop signals."""
    _received.append(signum)
    raise KeyboardInterrupt


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)  # a second signal must not cut the cleanup short
    _received.append(signum)
    raise Stopped(signum)
