"""Every failure becomes a JSON ``{"error": {...}}`` body with the status a client can act on."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from farm import errors
from farm.api.schemas import ErrorBody, error_body

log = logging.getLogger(__name__)

Responses = dict[int | str, dict[str, Any]]
# Documented on every route so the OpenAPI schema lists what a client may see.
ERROR_RESPONSES: Responses = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "Bad input: unknown option, undecodable audio, bad URI",
        401: "Missing or wrong bearer token",
        413: "Upload larger than api_max_upload_mb",
        503: "The broker or storage is unavailable; retry later",
    }.items()
}
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such job"}}
TIMEOUT: Responses = {
    504: {"model": ErrorBody, "description": "The job did not finish within api_wait_s; it goes on at /v1/jobs/<id>"}
}
CONFLICT: Responses = {409: {"model": ErrorBody, "description": "The job is not in a state that allows this"}}


class ApiError(Exception):
    """Raised by routes: becomes a JSON error with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}


def status_for(error_name: str | None) -> int:
    """The HTTP status for a farm error, by class name (as a failed job reports it)."""
    cls = getattr(errors, error_name or "", None)
    if isinstance(cls, type) and issubclass(cls, errors.JobTimeoutError):
        return 504
    if isinstance(cls, type) and issubclass(cls, errors.PermanentError):
        return 400
    if isinstance(cls, type) and issubclass(cls, errors.RetryableError):
        return 503
    return 500


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(errors.FarmError, _farm_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]


def _json(status: int, message: str, code: str | None = None, param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status_code=status)


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    response = _json(exc.status, exc.message, exc.code, exc.param)
    response.headers.update(exc.headers)
    return response


async def _farm_error(_: Request, exc: errors.FarmError) -> JSONResponse:
    status = status_for(type(exc).__name__)
    if status >= 500:
        log.warning("request failed: %s", exc)
    return _json(status, str(exc), type(exc).__name__)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    param = ".".join(where) or None
    message = f"{param}: {first.get('msg', 'invalid')}" if param else str(first.get("msg", "invalid request"))
    return _json(400, message, "invalid_parameter", param)


async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    headers = getattr(exc, "headers", None)
    response = _json(exc.status_code, str(exc.detail))
    if headers:
        response.headers.update(headers)
    return response
