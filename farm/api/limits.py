"""The upload size limit (``api_max_upload_mb``), answered with the API's JSON error body.

A request that declares a too-large ``Content-Length`` is refused before a byte of it
is read; a chunked one is cut off as soon as it passes the limit.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from farm.api.schemas import error_body


class UploadTooLarge(HTTPException):
    # An HTTPException, so FastAPI's body parsing lets it through to the JSON error handler.
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request is larger than the {max_bytes >> 20} MiB upload limit")


class UploadLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared(scope) > self.max_bytes:
            await _refuse(UploadTooLarge(self.max_bytes), scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise UploadTooLarge(self.max_bytes)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except UploadTooLarge as exc:
            if started:
                raise
            await _refuse(exc, scope, receive, send)


async def _refuse(exc: UploadTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
    body = error_body(413, str(exc.detail), "upload_too_large")
    await JSONResponse(body, status_code=413)(scope, receive, send)


def _declared(scope: Scope) -> int:
    try:
        return int(Headers(scope=scope).get("content-length", "0"))
    except ValueError:
        return 0
