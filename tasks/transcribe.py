"""The transcription tasks: parse the message, call the library, return JSON.

A long file becomes a chord: its parts run as ``farm.transcribe_part`` on any free
worker, and ``farm.merge_parts`` joins them in order under the original job id, so the
client follows one job whatever happens inside.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from celery import Task, chord
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from celery.signals import task_failure

from farm.constants import FANOUT_PROGRESS_KEY, MERGE_PARTS_TASK, PROGRESS_STATE, TRANSCRIBE_PART_TASK, TRANSCRIBE_TASK
from farm.errors import FarmError, InvalidJobError, JobTimeoutError, RetryableError
from farm.inference.pipeline import FanOut, JobProgressCallback, run_job
from farm.io.job_end import JobEnd
from farm.job.progress import JobProgress, progress_meta
from farm.job.result import Result, merge_parts
from farm.job.spec import JobSpec, PartSpec, failed_job, part_message
from farm.queue.connections import RedisSettings
from farm.queue.records import JobRecords
from farm.serve.runtime import get_job_end, get_runtime, worker_settings
from tasks.app import app

T = TypeVar("T")
_ANNOUNCED = (TRANSCRIBE_TASK, TRANSCRIBE_PART_TASK, MERGE_PARTS_TASK)
RETRY = {
    "bind": True,
    "autoretry_for": (RetryableError,),
    "retry_backoff": True,
    "retry_jitter": True,
    "max_retries": worker_settings().task_max_retries,
}


@app.task(name=TRANSCRIBE_TASK, **RETRY)
def transcribe(self: Task, message: dict[str, Any]) -> Result:
    task_id = self.request.id  # the request is thread-local; progress comes from the dispatcher
    _stop_if_cancelled(self, task_id)
    runtime = get_runtime()
    spec = runtime.parse(message)
    outcome = _guarded(lambda: run_job(spec, runtime, _progress(self, task_id), task_id))
    _stop_if_cancelled(self, task_id)
    if isinstance(outcome, FanOut):
        parts = [transcribe_part.s(part_message(message, part)) for part in outcome.parts]
        raise self.replace(chord(parts, merge.s(spec.name, message)))
    return _succeeded(task_id, spec, outcome | {"worker": self.request.hostname})


@app.task(name=TRANSCRIBE_PART_TASK, **RETRY)
def transcribe_part(self: Task, message: dict[str, Any]) -> Result:
    runtime = get_runtime()
    spec = runtime.parse(message)
    part = spec.part
    if part is None:
        raise InvalidJobError("a part message names no 'part'")
    _stop_if_cancelled(self, part.parent)
    try:
        outcome = _guarded(lambda: run_job(spec, runtime, _part_progress(self, part), self.request.id))
    except FarmError as exc:
        # Say which part failed, so a user can find the bad stretch of a long file.
        raise type(exc)(f"{part.label()}: {exc}") from exc
    assert not isinstance(outcome, FanOut)  # a part never fans out again
    return _succeeded(self.request.id, spec, outcome | {"worker": self.request.hostname})


@app.task(name=MERGE_PARTS_TASK, bind=True)
def merge(self: Task, parts: list[Result], source: str, message: dict[str, Any]) -> Result:
    self.backend.client.delete(FANOUT_PROGRESS_KEY.format(job_id=self.request.id))
    _stop_if_cancelled(self, self.request.id)
    return _succeeded(self.request.id, get_runtime().parse(message), merge_parts(parts, source))


@task_failure.connect
def _announce_failure(
    sender: Task | None = None,
    task_id: str = "",
    exception: BaseException | None = None,
    args: tuple[Any, ...] = (),
    **_: Any,
) -> None:
    # Sent once a job fails for good, not on the retries before; the message is last.
    if sender is not None and sender.name in _ANNOUNCED and exception is not None:
        job_id, delivery = failed_job(task_id, args[-1] if args else {})
        get_job_end().after_job(JobEnd(job_id, delivery, error=exception))


def _succeeded(task_id: str, spec: JobSpec, result: Result) -> Result:
    """Run the job-end hooks on a result; the task returns what they made of it."""
    end = get_job_end().after_job(JobEnd(task_id, spec.delivery, result=result, part=spec.part is not None))
    return end.result if end.result is not None else result


def _stop_if_cancelled(task: Task, job_id: str) -> None:
    """End a cancelled job as REVOKED, whichever worker draws it and whenever it started."""
    if _records().cancelled(job_id):
        # No request: a part's would count as a chord part returning and fail the whole job.
        task.backend.mark_as_revoked(job_id, "cancelled")
        raise Ignore(f"job {job_id} was cancelled")


@cache
def _records() -> JobRecords:
    settings = worker_settings()
    return JobRecords(RedisSettings.from_settings(settings), settings.result_expires)


def _guarded(call: Callable[[], T]) -> T:
    try:
        return call()
    except SoftTimeLimitExceeded as exc:
        limit = worker_settings().soft_time_limit
        raise JobTimeoutError(f"timed out: the job ran longer than soft_time_limit ({limit} s)") from exc


def _progress(task: Task, task_id: str) -> JobProgressCallback:
    def report(progress: JobProgress) -> None:
        if progress.percent >= 100:
            # SUCCESS follows at once and reads as 100 %; for a short clip this write and
            # the 0 % one (no longer made) were a fifth of what the queue added.
            return
        task.update_state(task_id=task_id, state=PROGRESS_STATE, meta=progress_meta(progress))

    return report


def _part_progress(task: Task, part: PartSpec) -> JobProgressCallback:
    """Report the share of the whole file done, summed over its parts, on the parent job.

    Percent only: parts decode at once on several workers, so the text so far would be
    the parts' texts in order up to the first unfinished one, and the merge may change
    where they join."""
    key = FANOUT_PROGRESS_KEY.format(job_id=part.parent)
    length = part.end - part.start
    redis = task.backend.client

    def report(progress: JobProgress) -> None:
        redis.hset(key, str(part.index), progress.percent / 100 * length)
        redis.expire(key, worker_settings().result_expires)
        done = sum(float(v) for v in redis.hvals(key))
        share = 100 * done / max(part.total, 1e-6)
        task.update_state(task_id=part.parent, state=PROGRESS_STATE, meta={"percent": round(min(share, 99.9), 1)})

    return report
