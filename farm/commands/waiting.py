"""Waiting on jobs without waiting in silence: after a few seconds with a job still queued,
say on stderr when no worker consumes its queue."""

from __future__ import annotations

import time
from typing import Any

import click

from farm.client import JobStatus
from farm.queue.consumers import consumers, no_consumer_note

NOTICE_AFTER_S = 3.0  # a worker that is there takes a job well within this
RECHECK_S = 30.0  # while nobody consumes, look again this often (said once)


class QueueWatch:
    """Tells the user, once, that the queue their jobs wait in has no consumer."""

    def __init__(self, app: Any, queue: str, after_s: float = NOTICE_AFTER_S) -> None:
        self.app = app
        self.queue = queue
        self._next_check = time.monotonic() + after_s
        self._told = False

    def check(self, statuses: list[JobStatus]) -> None:
        """Call from a polling loop; cheap except every ``RECHECK_S`` while a job is queued."""
        if self._told or time.monotonic() < self._next_check:
            return
        if not any(status.state == "queued" for status in statuses):
            return
        self._next_check = time.monotonic() + RECHECK_S
        if not consumers(self.app, self.queue):
            click.echo(no_consumer_note(self.queue), err=True)
            self._told = True
