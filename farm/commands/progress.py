"""Waiting for jobs: progress bars for people (one per file and one overall), or a quiet poll."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from farm.client import Job, JobStatus

POLL_INTERVAL_S = 0.25
Watch = Callable[[list[JobStatus]], None]


def follow(jobs: list[Job], timeout: float | None = None, watch: Watch | None = None) -> list[JobStatus]:
    """Poll until every job is done (or ``timeout``), drawing bars on stderr."""
    with _bars() as progress:
        overall = progress.add_task("all files", total=100.0 * len(jobs), state="")
        bars = {job.id: progress.add_task(job.name, total=100.0, state="queued") for job in jobs}
        return wait(jobs, timeout, watch, lambda statuses: _draw(progress, bars, overall, statuses))


def wait(
    jobs: list[Job], timeout: float | None = None, watch: Watch | None = None, draw: Watch | None = None
) -> list[JobStatus]:
    """Poll until every job is done (or ``timeout``); ``watch`` and ``draw`` see every round."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        statuses = [job.status() for job in jobs]
        for observer in (draw, watch):
            if observer is not None:
                observer(statuses)
        if all(s.done for s in statuses) or (deadline is not None and time.monotonic() > deadline):
            return statuses
        time.sleep(POLL_INTERVAL_S)


def _bars() -> Progress:
    from rich.console import Console

    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[state]}"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=False,
    )  # fmt: skip


def _draw(progress: Progress, bars: dict[str, TaskID], overall: TaskID, statuses: list[JobStatus]) -> None:
    for status in statuses:
        done = 100.0 if status.done else status.percent
        progress.update(bars[status.id], completed=done, state=status.state)
    finished = sum(100.0 if s.done else s.percent for s in statuses)
    progress.update(overall, completed=finished, state=f"{sum(s.done for s in statuses)}/{len(statuses)} done")
