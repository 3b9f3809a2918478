"""``stream=true`` on ``/v1/audio/transcriptions``: OpenAI's server-sent events.

The answer is ``text/event-stream``: ``transcript.text.delta`` events as the job's text
grows, then ``transcript.text.done`` with the whole text, which OpenAI's SDKs parse into
``TranscriptionTextDeltaEvent`` and ``TranscriptionTextDoneEvent``. The stream polls the
job's status, whose progress carries the text decoded so far: it grows once per decode
pass (a 30 s window), never per token, as CTranslate2's ``generate`` returns a window's
tokens all at once. A clip of one window sends its text when the job ends.

The rule for the text: a delta only ever extends what was sent, and only with text the
job reported; at the end the rest of the job's text follows, so the deltas add up to the
done event's text. Should the final text not extend what was sent (a decode run again
after a retry may differ), no further delta is sent and the done event carries the
job's text, which is the one to keep. Between events a comment line every few seconds
keeps proxies and read timeouts from giving up. A job that fails ends the stream with an
``{"error": ...}`` event, which the SDKs raise as ``APIError``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from farm.api.errors import ApiError
from farm.api.results import failure
from farm.api.schemas import error_body
from farm.client import Job, JobStatus

KEEPALIVE_S = 5.0
FIRST_POLL_S = 0.1  # a short job answers fast ...
POLL_S = 0.5  # ... a long one is asked for its text twice a second, as often as workers write it
STREAMED_FORMATS = ("json", "text")
MEDIA_TYPE = "text/event-stream"
JOB_ID_HEADER = "X-Job-Id"

log = logging.getLogger(__name__)


def check_stream(stream: bool, fmt: str) -> None:
    if stream and fmt not in STREAMED_FORMATS:
        message = f"stream=true answers transcript.text events; use response_format json or text, not {fmt}"
        raise ApiError(400, message, "unsupported_response_format", "response_format")


def response(job: Job, wait_s: float, on_end: Callable[[], None]) -> StreamingResponse:
    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # nginx: pass events on at once
        JOB_ID_HEADER: job.id,  # follow it at /v1/jobs/<id> should the stream break
    }
    return StreamingResponse(_events(job, wait_s, on_end), media_type=MEDIA_TYPE, headers=headers)


async def _events(job: Job, wait_s: float, on_end: Callable[[], None]) -> AsyncIterator[str]:
    try:
        async for event in _stream(job, time.monotonic() + wait_s):
            yield event
    finally:
        on_end()


async def _stream(job: Job, deadline: float) -> AsyncIterator[str]:
    sent, quiet_since, interval = "", time.monotonic(), FIRST_POLL_S
    while not (status := await run_in_threadpool(job.status)).done:
        if time.monotonic() >= deadline:
            message = f"job {job.id} did not finish in time; follow it at /v1/jobs/{job.id}"
            yield _event(error_body(504, message))
            return
        if delta := extension(sent, status.text, status.text_offset):
            sent += delta
            quiet_since = time.monotonic()
            yield _event(_delta(delta))
        elif time.monotonic() - quiet_since >= KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": waiting for the job\n\n"
        await asyncio.sleep(interval)
        interval = min(POLL_S, interval * 1.5)
    async for event in _ending(job, status, sent):
        yield event


async def _ending(job: Job, status: JobStatus, sent: str) -> AsyncIterator[str]:
    if status.state != "succeeded":
        exc = failure(status)
        yield _event(error_body(exc.status, exc.message, exc.code, exc.param))
        return
    result = await run_in_threadpool(job.result, 10.0)
    for event in final_events(sent, result["text"]):
        yield _event(event)


def extension(sent: str, partial: str, offset: int) -> str:
    """What ``partial`` (the job's text from character ``offset``) adds to ``sent``; nothing
    when it leaves a gap after ``sent`` or disagrees with it."""
    if offset > len(sent):
        return ""  # the report skipped past text not yet sent: the result will bring it
    overlap = sent[offset:]
    return partial[len(overlap) :] if partial.startswith(overlap) else ""


def final_events(sent: str, text: str) -> list[dict[str, Any]]:
    """The rest of ``text`` after what was sent, then done with the whole text."""
    rest = text[len(sent) :] if text.startswith(sent) else ""
    if not text.startswith(sent):
        log.warning("the final text does not extend the %d characters streamed; done carries it", len(sent))
    deltas = [_delta(rest)] if rest else []
    return [*deltas, {"type": "transcript.text.done", "text": text}]


def _delta(text: str) -> dict[str, Any]:
    return {"type": "transcript.text.delta", "delta": text}


def _event(data: Mapping[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"
