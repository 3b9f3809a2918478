"""How every ``farm`` command reports failure: one line, non-zero exit, no traceback."""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from farm.commands.signals import Stopped, received
from farm.errors import FarmError

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(command: F) -> F:
    """Show a one-line error and exit non-zero instead of a traceback; a command may also
    return its exit status."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            status = command(*args, **kwargs)
        except FarmError as exc:
            click.echo(f"error: {exc}", err=True)
            status = 1
        except (KeyboardInterrupt, Stopped) as exc:
            status = _stopped(exc.signum if isinstance(exc, Stopped) else signal.SIGINT)
        except Exception:
            # A stop signal goes to the whole process group: a private farm's Redis may die
            # first, and the command then fails on its connection, not on the signal.
            if received() is None:
                raise
            status = _stopped(received() or signal.SIGTERM)
        # Exit only once the command's frames (and the job handles they hold) are gone: left
        # for interpreter shutdown, Celery's AsyncResult.__del__ prints "Exception ignored".
        gc.collect()
        if status:
            sys.exit(status)

    wrapper.__name__ = command.__name__
    wrapper.__doc__ = command.__doc__
    return wrapper  # type: ignore[return-value]


def _stopped(signum: int) -> int:
    click.echo(f"stopped ({signal.Signals(signum).name})", err=True)
    return 128 + signum
