"""Helpers for the fault tests: farms of their own, a Redis that survives restarts, clips.

Every test here runs real processes and kills them for real. Sizes come from
``FARM_REL_*`` variables: CI runs the small defaults, and docs/reliability.md records a
bigger run (e.g. ``FARM_REL_KILL_JOBS=50 FARM_REL_RESTART_JOBS=200 FARM_REL_MEMORY_JOBS=500``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil
import pytest

from farm.client import Client, Job, JobStatus
from farm.config import Settings
from farm.redis_server import RedisServer, free_port, redis_binary, start_redis
from tests.conftest import WorkerProcess, start_worker

_SUCCEEDED = re.compile(r"Task farm\.transcribe\[([0-9a-f-]{36})\] succeeded")
_RECEIVED = re.compile(r"Task farm\.transcribe\[([0-9a-f-]{36})\] received")


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
    from farm.broker import broker_reachable

    return broker_reachable(url, timeout=0.3)


def wait_until(condition: object, timeout: float, message: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(message)


@dataclass
class Farm:
    """A Redis and ``farm worker`` processes that no other test can take jobs from."""

    settings: Settings
    client: Client
    directory: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(self, **extra: str) -> WorkerProcess:
        log = self.directory / f"worker-{len(self.workers)}.log"
        worker = start_worker(self.settings, log, 1, **extra)
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(w.output() for w in self.workers)

    def executions(self) -> Counter[str]:
        """How many times each job ran to success, from every worker's log."""
        return Counter(_SUCCEEDED.findall(self.logs()))

    def receptions(self) -> Counter[str]:
        return Counter(_RECEIVED.findall(self.logs()))

    def stop(self) -> None:
        self.client.close()
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.stop()


@contextmanager
def own_farm(settings: Settings, directory: Path, redis_url: str | None = None, **extra: str) -> Iterator[Farm]:
    """A farm on ``redis_url`` (default: a throw-away Redis) with one worker started."""
    server: RedisServer | None = None
    if redis_url is None:
        server = start_redis()
        redis_url = server.url
    own = replace(settings, broker_url=redis_url, result_backend=redis_url)
    farm = Farm(own, Client(own), directory)
    try:
        farm.start_worker(**extra)
        yield farm
    finally:
        farm.stop()
        if server is not None:
            server.stop()


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
