"""When the supervisor restarts a worker process that died, and when it stops trying.

A process that keeps dying (a bad model path, a broken GPU) is restarted with a growing
delay and given up after ``max_restarts`` within ``window_s``; deaths spread over time (an
OOM kill a month) never add up to giving up, and a process that ran ``healthy_s`` starts
again from a clean record.
"""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5  # restarts allowed within window_s before the supervisor gives up
    window_s: float = 600.0
    first_delay_s: float = 1.0  # doubled after each restart, up to max_delay_s
    max_delay_s: float = 60.0
    healthy_s: float = 300.0  # a process that ran this long starts over with a clean record


@dataclass
class RestartRecord:
    """One child's recent restarts under ``policy``."""

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    times: deque[float] = field(default_factory=deque)
    delay_s: float = -1.0

    def next_delay(self, now: float, uptime_s: float) -> float | None:
        """Seconds to wait before the restart, or None when the child restarted too often."""
        if uptime_s >= self.policy.healthy_s or self.delay_s < 0:
            self.times.clear()
            self.delay_s = self.policy.first_delay_s
        while self.times and now - self.times[0] > self.policy.window_s:
            self.times.popleft()
        if len(self.times) >= self.policy.max_restarts:
            return None
        self.times.append(now)
        delay, self.delay_s = self.delay_s, min(self.delay_s * 2, self.policy.max_delay_s)
        return delay


def exit_cause(returncode: int) -> str:
    """``exited with code 1`` or ``killed by SIGKILL``."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"
