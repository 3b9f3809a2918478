"""``stream=true`` on ``/v1/audio/transcriptions``: OpenAI's server-sent events.

The answer is ``text/event-stream``: one ``transcript.text.delta`` event per segment,
then ``transcript.text.done`` with the whole text, which OpenAI's SDKs parse into
``TranscriptionTextDeltaEvent`` and ``TranscriptionTextDoneEvent``. The segments come
when the job's result does (the workers publish results, not segments as they decode);
until then a comment line every few seconds keeps proxies and read timeouts from giving
up. A job that fails ends the stream with an ``{"error": ...}`` event, which the SDKs
raise as ``APIError``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fastapi.responses import StreamingResponse

from farm.api.errors import ApiError
from farm.api.results import wait_for_result
from farm.api.schemas import error_body
from farm.client import Job

KEEPALIVE_S = 5.0
STREAMED_FORMATS = ("json", "text")
MEDIA_TYPE = "text/event-stream"


def check_stream(stream: bool, fmt: str) -> None:
    if stream and fmt not in STREAMED_FORMATS:
        message = f"stream=true answers transcript.text events; use response_format json or text, not {fmt}"
        raise ApiError(400, message, "unsupported_response_format", "response_format")


def response(job: Job, wait_s: float, on_end: Callable[[], None]) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: pass events on at once
    return StreamingResponse(_events(job, wait_s, on_end), media_type=MEDIA_TYPE, headers=headers)


async def _events(job: Job, wait_s: float, on_end: Callable[[], None]) -> AsyncIterator[str]:
    try:
        result = None
        deadline = time.monotonic() + wait_s
        while result is None:
            try:
                result = await wait_for_result(job, min(KEEPALIVE_S, max(0.0, deadline - time.monotonic())))
            except ApiError as exc:
                if exc.status != 504 or time.monotonic() >= deadline:
                    yield _event(error_body(exc.status, exc.message, exc.code, exc.param))
                    return
                yield ": waiting for the job\n\n"
        for event in transcript_events(result):
            yield _event(event)
    finally:
        on_end()


def transcript_events(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One delta per segment, then done; the deltas add up to the text."""
    deltas = [{"type": "transcript.text.delta", "delta": segment["text"]} for segment in result.get("segments", [])]
    return [*deltas, {"type": "transcript.text.done", "text": "".join(d["delta"] for d in deltas)}]


def _event(data: Mapping[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"
