"""A private farm for one command: a throw-away Redis plus one worker process.

``farm transcribe`` uses it when no broker answers and ``embedded_broker`` is on. It is
the production path (real Redis, real Celery worker), only started and stopped for you.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace

from farm.client import Client
from farm.config import Settings
from farm.errors import BrokerUnavailableError, ConfigError
from farm.serve.redis_server import start_redis

WORKER_START_TIMEOUT_S = 300.0  # a first start may assemble or convert the model
STOP_GRACE_S = 2.5  # a warm shutdown with no job running takes about a second
# What a worker of each engine imports (whisperfarm[worker]); a producer install has none of it.
WORKER_MODULES = {"ctranslate2": ("numpy", "av", "faster_whisper"), "transformers": ("numpy", "av", "torch")}


@dataclass(frozen=True)
class LocalFarm:
    settings: Settings  # pointing at the private Redis
    worker_pid: int  # the `farm worker` supervisor (its children run the jobs)


@contextmanager
def local_farm(settings: Settings, env: Mapping[str, str] | None = None, processes: int = 1) -> Iterator[LocalFarm]:
    """A private Redis and one `farm worker` (with ``env`` on top of this process's),
    yielded once ``processes`` worker processes answer a ping."""
    require_worker_side(settings.engine)
    server = start_redis()
    local = replace(settings, broker_url=server.url, result_backend=server.url)
    log = tempfile.NamedTemporaryFile(prefix="farm-worker-", suffix=".log", delete=False)  # noqa: SIM115  (outlives this block)
    worker = subprocess.Popen(
        [sys.executable, "-m", "farm.cli", "worker"],
        env=os.environ | dict(env or {}) | {"FARM_BROKER_URL": server.url, "FARM_RESULT_BACKEND": server.url},
        stdout=log,
        stderr=subprocess.STDOUT,
        # Its own process group: Ctrl-C or `timeout` reach this process alone, and _stop ends the
        # supervisor and every child it started in one go.
        start_new_session=True,
    )
    try:
        _wait_for_workers(local, worker, processes, log.name)
        yield LocalFarm(local, worker.pid)
    finally:
        _stop(worker)
        server.stop()
        log.close()


def require_worker_side(engine: str) -> None:
    """Fail at once, with what to do, where this install could not run a worker."""
    missing = [name for name in WORKER_MODULES.get(engine, ()) if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"this install has no worker side (no {', '.join(missing)}): "
            "install whisperfarm[worker] to run a local worker, or point FARM_BROKER_URL at a farm"
        )


def _wait_for_workers(settings: Settings, worker: subprocess.Popen[bytes], count: int, log_path: str) -> None:
    client = Client(settings)
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise BrokerUnavailableError(f"the local worker exited at start; see {log_path}")
            if len(client.workers(timeout=0.5)) >= count:
                return
        raise BrokerUnavailableError(f"the local worker did not start in time; see {log_path}")
    finally:
        client.close()


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """End the worker's whole process group: politely, then (after ``STOP_GRACE_S``) for good.
    A private farm's jobs belong to this command alone, so nothing is worth waiting for."""
    _signal_group(worker.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=STOP_GRACE_S)
    _signal_group(worker.pid, signal.SIGKILL)  # children the supervisor left behind, too
    worker.wait()


def _signal_group(leader: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(leader, signum)
