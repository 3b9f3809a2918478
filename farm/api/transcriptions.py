"""OpenAI-compatible ``/v1/audio/transcriptions`` and ``/v1/audio/translations``.

They answer when the job is done, in OpenAI's shapes, so OpenAI's SDKs work by pointing
``base_url`` at the farm. ``model`` must be ``whisper-1`` or a model the farm serves.
Long files belong on ``/v1/jobs``; these requests wait at most ``api_wait_s`` seconds,
then answer 504 naming the job, which goes on. An ``Idempotency-Key`` header makes a
repeated request (an SDK's retry) wait for the same job instead of queueing another.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from farm.api import streaming, uploads
from farm.api.errors import ERROR_RESPONSES, TIMEOUT, ApiError, Responses
from farm.api.models import check_model, refuse_unserved_language
from farm.api.results import wait_for_result
from farm.api.schemas import Granularity, ResponseFormat, Segment, Transcription, Usage, VerboseTranscription, Word
from farm.api.state import api_state
from farm.client import Job
from farm.constants import MAX_BEAM_SIZE, MIN_BEAM_SIZE
from farm.job.formats import render

router = APIRouter(prefix="/v1/audio", tags=["OpenAI-compatible"])

SUCCESS: Responses = {
    200: {
        "description": "json and verbose_json: JSON; text, srt and vtt: plain text; stream=true: server-sent events",
        "model": Transcription | VerboseTranscription,
        "content": {"text/plain": {"schema": {"type": "string"}}, "text/event-stream": {"schema": {"type": "string"}}},
    }
}
RESPONSES: Responses = {**SUCCESS, **ERROR_RESPONSES, **TIMEOUT}

AudioFile = Annotated[UploadFile, File(description="The audio: any format FFmpeg decodes")]
Model = Annotated[str, Form(description="whisper-1 (the farm's model) or a name GET /v1/models lists")]
Prompt = Annotated[str | None, Form(description="Text to steer spelling and style (initial prompt)")]
Format = Annotated[ResponseFormat, Form()]
Temperature = Annotated[float | None, Form(ge=0, le=1)]
BeamSize = Annotated[int | None, Form(ge=MIN_BEAM_SIZE, le=MAX_BEAM_SIZE, description="farm extension: beam width")]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description="a repeated request with this key waits for the same job")
]
RETRY_HEADER = "x-should-retry"  # OpenAI's SDKs obey it before their own retry rules


@router.post("/transcriptions", responses=RESPONSES, response_class=Response, summary="Transcribe audio")
async def create_transcription(
    request: Request,
    file: AudioFile,
    model: Model,
    language: Annotated[str | None, Form(description="ISO 639-1 code; empty: detect")] = None,
    prompt: Prompt = None,
    response_format: Format = "json",
    temperature: Temperature = None,
    timestamp_granularities: Annotated[list[Granularity] | None, Form(alias="timestamp_granularities[]")] = None,
    beam_size: BeamSize = None,
    stream: Annotated[bool, Form(description="answer with transcript.text.delta/done server-sent events")] = False,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    streaming.check_stream(stream, response_format)
    words = "word" in (timestamp_granularities or [])
    options = {"language": language or None, "initial_prompt": prompt, "temperature": temperature}
    options |= {"beam_size": beam_size, "word_timestamps": words or None, "task": "transcribe"}
    options |= {"idempotency_key": idempotency_key}
    return await _answer(request, file, model, options, response_format, stream)


@router.post("/translations", responses=RESPONSES, response_class=Response, summary="Translate audio into English")
async def create_translation(
    request: Request,
    file: AudioFile,
    model: Model,
    prompt: Prompt = None,
    response_format: Format = "json",
    temperature: Temperature = None,
    beam_size: BeamSize = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    options = {"initial_prompt": prompt, "temperature": temperature, "beam_size": beam_size, "task": "translate"}
    return await _answer(request, file, model, options | {"idempotency_key": idempotency_key}, response_format)


async def _answer(
    request: Request, upload: UploadFile, model: str, options: dict[str, Any], fmt: str, stream: bool = False
) -> Response:
    state = api_state(request)
    check_model(state.settings, model)
    refuse_unserved_language(state.settings, options)
    options = {key: value for key, value in options.items() if value is not None}
    await run_in_threadpool(uploads.sweep, state.settings)
    saved = await run_in_threadpool(uploads.save, upload.file, upload.filename, state.settings)
    job = await run_in_threadpool(uploads.submit, state.client, saved, **options)  # removes it if not queued
    release = partial(uploads.release, saved, job, state.settings)
    try:
        if not job.reused:
            await run_in_threadpool(state.registry.add, job.id, saved.name)
    except BaseException:
        await run_in_threadpool(release)
        raise
    if stream:  # events keep the connection alive: it may wait as long as the job may run
        return streaming.response(job, state.settings.time_limit, release)
    try:
        result = await _waited(job, state.settings.api_wait_s, retry_safe="idempotency_key" in options)
    finally:
        # A job that timed out here may still run: its audio stays until it ends (or is swept).
        await run_in_threadpool(release)
    return openai_response(result, fmt, bool(options.get("word_timestamps")))


async def _waited(job: Job, wait_s: float, retry_safe: bool) -> dict[str, Any]:
    """The job's result; an error tells the SDK whether its retry would queue the audio again."""
    try:
        return await wait_for_result(job, wait_s)
    except ApiError as exc:
        if exc.status in (409, 504):  # a cancelled job, or one still running: resubmitting duplicates it
            exc.headers[RETRY_HEADER] = "true" if retry_safe and exc.status == 504 else "false"
        raise


def openai_response(result: Mapping[str, Any], fmt: str, words: bool) -> Response:
    if fmt == "json":
        return JSONResponse({"text": result["text"]})
    if fmt == "verbose_json":
        return JSONResponse(verbose_json(result, words))
    text = render(result, "txt" if fmt == "text" else fmt)
    return PlainTextResponse(text)


def verbose_json(result: Mapping[str, Any], words: bool) -> dict[str, Any]:
    body = VerboseTranscription(
        task=result["task"],
        language=result["language"],
        duration=result["duration"],
        text=result["text"],
        segments=[_segment(segment) for segment in result.get("segments", [])],
        words=[Word(word=w["word"], start=w["start"], end=w["end"]) for w in result["words"]] if words else None,
        usage=Usage(seconds=result["duration"]),
    )
    return body.model_dump(exclude_none=True)


def _segment(segment: Mapping[str, Any]) -> Segment:
    # Whisper's "seek" is a 10 ms frame offset; token ids are not kept by the engines.
    fields = {key: segment[key] for key in Segment.model_fields if key in segment}
    return Segment(**fields | {"seek": round(float(segment["start"]) * 100), "tokens": []})
