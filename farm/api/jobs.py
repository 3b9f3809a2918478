"""Asynchronous jobs for long files: submit, follow, fetch the result, cancel, list."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Header, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from farm.api import uploads
from farm.api.errors import CONFLICT, ERROR_RESPONSES, NOT_FOUND, ApiError, Responses
from farm.api.models import refuse_unserved_language
from farm.api.registry import Entry
from farm.api.results import failure, job_info
from farm.api.schemas import JobInfo, JobList, JobState
from farm.api.state import ApiState, api_state
from farm.client import Job
from farm.constants import MAX_BEAM_SIZE, MIN_BEAM_SIZE
from farm.io.delivery import CONTENT_TYPES
from farm.io.storage import split_s3_uri
from farm.job.formats import render

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

OutputFormat = Literal["txt", "json", "srt", "vtt", "tsv"]
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,64}$", description="the id POST /v1/jobs returned")]
MAX_SCANNED = 2000  # entries a filtered listing looks at before it stops
REPLAYED_HEADER = "Idempotent-Replayed"
IdempotencyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="the same key within result_expires returns the same job"),
]
RESULT_RESPONSE: Responses = {
    200: {
        "description": "format=json: the verbose_json-shaped result with farm details; others: text",
        "content": {"application/json": {"schema": {"type": "object"}}, "text/plain": {"schema": {"type": "string"}}},
    }
}


@router.post("", status_code=202, responses={**ERROR_RESPONSES}, summary="Queue a job")
async def create_job(
    request: Request,
    response: Response,
    file: Annotated[UploadFile | None, File(description="the audio; or give uri")] = None,
    uri: Annotated[str | None, Form(description="s3://bucket/key of the audio, instead of a file")] = None,
    language: Annotated[str | None, Form(description="ISO 639-1 code; empty: detect")] = None,
    task: Annotated[Literal["transcribe", "translate"] | None, Form()] = None,
    prompt: Annotated[str | None, Form(description="initial prompt")] = None,
    temperature: Annotated[float | None, Form(ge=0, le=1)] = None,
    beam_size: Annotated[int | None, Form(ge=MIN_BEAM_SIZE, le=MAX_BEAM_SIZE)] = None,
    word_timestamps: Annotated[bool, Form()] = False,
    formats: Annotated[list[OutputFormat] | None, Form(description="result files to write to output")] = None,
    output: Annotated[str | None, Form(description="s3://bucket/prefix for <job id>.<format> files")] = None,
    callback_url: Annotated[str | None, Form(description="gets a signed POST when the job ends")] = None,
    idempotency_key: Annotated[str | None, Form(description="the same key again returns the same job")] = None,
    idempotency_header: IdempotencyHeader = None,
) -> JobInfo:
    state = api_state(request)
    options = {"language": language or None, "task": task, "initial_prompt": prompt, "temperature": temperature}
    options |= {"beam_size": beam_size, "word_timestamps": word_timestamps or None}
    options |= {"idempotency_key": idempotency_header or idempotency_key or None}
    delivery = {"output": output or None, "formats": formats or (), "callback_url": callback_url or None}
    kwargs = {key: value for key, value in (options | delivery).items() if value is not None}
    job = await run_in_threadpool(_submit, state, file, uri, kwargs)
    entry = await run_in_threadpool(_registered, state, job)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if job.reused:
        response.headers[REPLAYED_HEADER] = "true"
    return await run_in_threadpool(job_info, state, job.id, entry)


def _registered(state: ApiState, job: Job) -> Entry | None:
    return state.registry.get(job.id) if job.reused else state.registry.add(job.id, job.name)


def _submit(state: ApiState, upload: UploadFile | None, uri: str | None, kwargs: dict[str, Any]) -> Job:
    refuse_unserved_language(state.settings, kwargs)
    if (upload is None) == (not uri):
        raise ApiError(400, "send exactly one of 'file' (an upload) or 'uri' (s3://bucket/key)", "missing_audio")
    if not str(kwargs.get("output", "s3://")).startswith("s3://"):
        # A directory would be one on the workers' disks: not the caller's to choose.
        raise ApiError(400, "output must be an s3://bucket/prefix URI", "invalid_output", "output")
    if uri:
        split_s3_uri(uri)  # this server's paths are not the caller's business: S3 only
        return state.client.submit(uri, **kwargs)
    assert upload is not None
    uploads.sweep(state.settings)
    saved = uploads.save(upload.file, upload.filename, state.settings)
    return uploads.submit(state.client, saved, **kwargs)


@router.get("", summary="List recent jobs", responses={**ERROR_RESPONSES})
async def list_jobs(
    request: Request,
    status: Annotated[JobState | None, Query(description="only jobs in this state")] = None,
    since: Annotated[float | None, Query(ge=0, description="only jobs submitted after this Unix time")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobList:
    state = api_state(request)
    return JobList(data=await run_in_threadpool(_recent, state, status, since, limit))


def _recent(state: ApiState, status: str | None, since: float | None, limit: int) -> list[JobInfo]:
    found: list[JobInfo] = []
    for scanned, entry in enumerate(state.registry.newest(since), start=1):
        info = job_info(state, entry.id, entry)
        if status is None or info.status == status:
            found.append(info)
        if len(found) >= limit or scanned >= MAX_SCANNED:
            break
    return found


@router.get("/{job_id}", summary="A job's status", responses={**ERROR_RESPONSES, **NOT_FOUND})
async def get_job(request: Request, job_id: JobId) -> JobInfo:
    state = api_state(request)
    entry = await run_in_threadpool(_known, state, job_id)
    return await run_in_threadpool(job_info, state, job_id, entry, True)


@router.get(
    "/{job_id}/result",
    summary="A finished job's result",
    response_class=Response,
    responses={**RESULT_RESPONSE, **ERROR_RESPONSES, **NOT_FOUND, **CONFLICT},
)
async def get_result(request: Request, job_id: JobId, format: Annotated[OutputFormat, Query()] = "json") -> Response:
    state = api_state(request)
    await run_in_threadpool(_known, state, job_id)
    status = await run_in_threadpool(state.client.job(job_id).status)
    if not status.done:
        raise ApiError(409, f"job {job_id} is {status.state}; try again later", "job_not_finished")
    if status.state == "cancelled":
        raise failure(status)
    if status.state != "succeeded":
        raise ApiError(409, f"job {job_id} failed: {failure(status).message}", failure(status).code)
    result = await run_in_threadpool(state.client.job(job_id).result, 10.0)
    if format == "json":
        return JSONResponse(result)
    return PlainTextResponse(render(result, format), media_type=CONTENT_TYPES[format].split(";")[0])


@router.delete("/{job_id}", summary="Cancel a job", responses={**ERROR_RESPONSES, **NOT_FOUND, **CONFLICT})
async def cancel_job(request: Request, job_id: JobId) -> JobInfo:
    state = api_state(request)
    entry = await run_in_threadpool(_known, state, job_id)
    return await run_in_threadpool(_cancel, state, job_id, entry)


def _cancel(state: ApiState, job_id: str, entry: Entry | None) -> JobInfo:
    status = state.client.job(job_id).status()
    if status.done:
        message = f"job {job_id} already {status.state}; only unfinished jobs can be cancelled"
        raise ApiError(409, message, "not_cancellable")
    # A running part finishes its audio (stopping it would kill its worker's other jobs);
    # no later part runs and the job ends cancelled.
    state.client.job(job_id).cancel()
    return job_info(state, job_id, state.registry.get(job_id) or entry)


def _known(state: ApiState, job_id: str) -> Entry | None:
    """The job's registry entry; 404 unless the API or the result backend knows the id."""
    entry = state.registry.get(job_id)
    if entry is None and state.client.job(job_id).status().state == "unknown":
        raise ApiError(404, f"no job {job_id}", "job_not_found", "job_id")
    return entry
