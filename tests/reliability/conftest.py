"""Helpers for the fault tests: farms of their own, a Redis that survives restarts, clips.

Every test here runs real processes and kills them for real. Sizes come from
``FARM_REL_*`` variables: CI runs the small defaults, and docs/reliability.md records a
bigger run (e.g. ``FARM_REL_KILL_JOBS=50 FARM_REL_RESTART_JOBS=200 FARM_REL_MEMORY_JOBS=500``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from farm.client import Client, Job, JobStatus
from farm.serve.redis_server import free_port, redis_binary
from tests.conftest import Farm as Farm
from tests.conftest import WorkerProcess
from tests.conftest import own_farm as own_farm


def size(name: str, default: int) -> int:
    """A test's size from ``FARM_REL_<NAME>``, else the small CI default."""
    return int(os.environ.get(f"FARM_REL_{name}", default))


@dataclass
class PersistentRedis:
    """A redis-server with an append-only file, so a restart keeps queues and results."""

    directory: Path
    port: int = field(default_factory=free_port)
    password: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
        ]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(lambda: _answers(self.url), 15, "redis-server did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


def _answers(url: str) -> bool:
    from farm.queue.connections import RedisSettings, reachable

    return reachable(RedisSettings(url), timeout_s=0.3)


def wait_until(condition: object, timeout: float, message: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(message)


def celery_processes(worker: WorkerProcess) -> list[psutil.Process]:
    """The live Celery processes under ``farm worker``: the main process first, then pool children."""
    return [p for p in psutil.Process(worker.process.pid).children(recursive=True) if _alive(p)]


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)  # killed, not yet reaped by its parent
    except psutil.NoSuchProcess:
        return False


def wait_all(client: Client, jobs: list[Job], timeout: float) -> list[JobStatus]:
    statuses = client.wait_all(jobs, timeout=timeout)
    pending = [s for s in statuses if not s.done]
    assert not pending, f"{len(pending)} of {len(jobs)} jobs unfinished after {timeout} s: {pending[:3]}"
    return statuses


def tree_rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    tree = [process, *process.children(recursive=True)]
    return float(sum(p.memory_info().rss for p in tree)) / 2**20


@pytest.fixture()
def redis_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "redis"
    directory.mkdir()
    return directory
