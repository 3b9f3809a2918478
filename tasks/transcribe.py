"""The transcription task: parse the message, call the library, return JSON."""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from farm.config import get_settings
from farm.constants import PROGRESS_STATE, TRANSCRIBE_TASK
from farm.errors import JobTimeoutError, RetryableError
from farm.runtime import get_runtime
from farm.transcription import run_job
from tasks.app import app


@app.task(
    name=TRANSCRIBE_TASK,
    bind=True,
    autoretry_for=(RetryableError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=get_settings().task_max_retries,
)
def transcribe(self: Task, message: dict[str, Any]) -> dict[str, Any]:
    task_id = self.request.id  # the request is thread-local; progress comes from the dispatcher

    def report(percent: float) -> None:
        self.update_state(task_id=task_id, state=PROGRESS_STATE, meta={"percent": round(percent, 1)})

    try:
        return run_job(message, get_runtime(), report)
    except SoftTimeLimitExceeded as exc:
        limit = get_settings().soft_time_limit
        raise JobTimeoutError(f"timed out: the job ran longer than soft_time_limit ({limit} s)") from exc
