"""Following a job from the API: waiting without holding a thread, and describing it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.concurrency import run_in_threadpool

from farm.api.errors import ApiError, status_for
from farm.api.registry import Entry
from farm.api.schemas import JobInfo
from farm.api.state import ApiState
from farm.client import Job, JobStatus
from farm.errors import FarmError

POLL_S = 0.1
MAX_POLL_S = 1.0


async def wait_for_result(job: Job, timeout_s: float) -> dict[str, Any]:
    """The job's result once it is done; a failed job becomes an ApiError with its message."""
    deadline = time.monotonic() + timeout_s
    interval = POLL_S
    while not (status := await run_in_threadpool(job.status)).done:
        if time.monotonic() > deadline:
            raise ApiError(504, f"job {job.id} did not finish within {timeout_s:.0f} s; follow it at /v1/jobs/{job.id}")
        await asyncio.sleep(interval)
        interval = min(MAX_POLL_S, interval * 1.5)  # short jobs answer fast, long ones poll less
    if status.state != "succeeded":
        raise failure(status)
    return await run_in_threadpool(job.result, 10.0)


def failure(status: JobStatus) -> ApiError:
    if status.state == "cancelled":
        return ApiError(409, f"job {status.id} was cancelled", "job_cancelled")
    code = status_for(status.error_type)
    return ApiError(code, status.error or "the job failed", status.error_type or "job_failed")


def job_info(state: ApiState, job_id: str, entry: Entry | None, with_outputs: bool = False) -> JobInfo:
    status = state.client.job(job_id).status()
    # "unknown": an entry older than the job records (they are kept as long).
    return JobInfo(
        id=job_id,
        status="queued" if status.state == "unknown" else status.state,  # type: ignore[arg-type]
        progress=status.percent,
        text=status.text,
        text_offset=status.text_offset,
        name=entry.name if entry else "",
        created_at=entry.created_at if entry else None,
        error=status.error,
        error_type=status.error_type,
        result_url=f"/v1/jobs/{job_id}/result",
        outputs=_outputs(state, job_id) if with_outputs and status.state == "succeeded" else {},
    )


def _outputs(state: ApiState, job_id: str) -> dict[str, str]:
    result = state.client.job(job_id).result(timeout=5.0)
    outputs: dict[str, str] = dict(result.get("outputs", {}))
    try:
        return outputs | state.client.presigned_urls(result)
    except FarmError:
        return outputs  # no S3 credentials here: the URIs are still useful
