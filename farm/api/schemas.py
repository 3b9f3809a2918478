"""What the API answers with: response bodies as pydantic models (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "started", "retrying", "succeeded", "failed", "cancelled"]
ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
Granularity = Literal["word", "segment"]


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, not_found_error, ...")
    code: str | None = None
    param: str | None = None


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer; the shape OpenAI's SDKs read their error message from."""

    error: ErrorDetail


class Transcription(BaseModel):
    text: str


class Segment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class Word(BaseModel):
    word: str
    start: float
    end: float


class Usage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class VerboseTranscription(BaseModel):
    task: str
    language: str
    duration: float
    text: str
    segments: list[Segment]
    words: list[Word] | None = None
    usage: Usage


class JobInfo(BaseModel):
    id: str
    status: JobState
    progress: float = Field(description="percent of the audio done, 0-100")
    text: str = Field(
        "", description="while the job runs: the end of the text decoded so far, a decode pass (30 s window) at a time"
    )
    text_offset: int = Field(0, description="where `text` starts in the job's text (its start is cut on long files)")
    name: str = ""
    created_at: float | None = Field(None, description="Unix time the API accepted the job")
    error: str | None = None
    error_type: str | None = None
    result_url: str = Field(description="where the result is, once status is succeeded")
    outputs: dict[str, str] = Field(
        default_factory=dict, description="result files by format: presigned https:// URLs for S3, else paths"
    )


class JobList(BaseModel):
    data: list[JobInfo]


class Health(BaseModel):
    status: str
    workers: list[str] = Field(default_factory=list)
    reason: str | None = None


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return ErrorBody(error=ErrorDetail(message=message, type=error_type(status), code=code, param=param)).model_dump()


def error_type(status: int) -> str:
    return {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        409: "conflict_error",
        413: "request_too_large",
    }.get(status, "invalid_request_error" if status < 500 else "server_error")
