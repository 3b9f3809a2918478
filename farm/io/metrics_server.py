"""``farm metrics``' HTTP server: on the configured host, behind the API's bearer token.

The API's ``/metrics`` asks for ``api_token``; a metrics port open to anyone on every
interface would hand out the same numbers without it.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
REFUSAL = b"missing or wrong bearer token (Authorization: Bearer <api_token>)\n"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # Prometheus scrapes every few seconds: no line per scrape


def with_token(app: Wsgi, token: str) -> Wsgi:
    """``app`` answering 401 unless the request carries ``Authorization: Bearer <token>``."""
    if not token:
        return app
    expected = f"Bearer {token}".encode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if hmac.compare_digest(str(environ.get("HTTP_AUTHORIZATION", "")).encode(), expected):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer"), ("Content-Type", "text/plain")])
        return [REFUSAL]

    return guarded


def start(app: Wsgi, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``app`` on ``host:port`` from a daemon thread."""
    server = make_server(host, port, app, _Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="farm-metrics", daemon=True)
    thread.start()
    return server, thread
