"""Real servers for the storage, API, webhook, metrics and Flower tests.

The session ``worker`` fixture starts ``farm worker`` with a copy of ``os.environ``, and
it starts only after collection; so the S3 endpoint (a moto_server on a port reserved
here) and the webhook secret it must know are put into the environment at import,
which is collection time. Every test module that needs them imports this module.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from farm.serve.redis_server import free_port

MOTO_PORT = free_port()
REGION = "us-east-1"
WEBHOOK_SECRET = "whsec-" + secrets.token_hex(16)
SERVICE_ENV = {
    "FARM_S3_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
    "FARM_S3_REGION": REGION,
    "FARM_S3_ACCESS_KEY_ID": "testing",
    "FARM_S3_SECRET_ACCESS_KEY": "testing",
    "FARM_S3_ADDRESSING_STYLE": "path",
    "FARM_WEBHOOK_SECRET": WEBHOOK_SECRET,
}
os.environ.update(SERVICE_ENV)
MOTO_SERVER = Path(sys.executable).with_name("moto_server")


@dataclass
class MotoServer:
    """A moto_server process: a real S3-compatible HTTP endpoint."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def s3(self, key_id: str = "testing", secret: str = "testing") -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_moto(port: int | None = None, **env: str) -> MotoServer:
    port = port or free_port()
    argv = [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(argv, env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = MotoServer(port, process)
    wait_for_http(f"{server.url}/moto-api/data.json", process)
    return server


@cache
def shared_moto() -> MotoServer:
    """The moto_server the session worker was told about; one per test process."""
    server = start_moto(MOTO_PORT)
    atexit.register(server.stop)
    return server


def wait_for_http(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers, if not with 200
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url}")


@contextmanager
def serve_app(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server that records POSTs and answers with scripted statuses."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Delivery]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.deliveries) >= count, timeout):
                raise AssertionError(f"{len(self.deliveries)} of {count} webhook calls arrived")
            return list(self.deliveries)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    port = free_port()
    receiver = Receiver(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.arrived:
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
                receiver.arrived.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
