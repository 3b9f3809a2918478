"""`farm api` as an operator runs it: a uvicorn process on a port, refusing to run open in production."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from farm.config import Settings
from farm.serve.redis_server import free_port
from tests.api.servers import wait_for_http
from tests.conftest import ROOT, worker_env

pytestmark = pytest.mark.slow


def test_farm_api_serves_until_stopped(farm_settings: Settings) -> None:
    port = free_port()
    env = worker_env(farm_settings, FARM_API_TOKEN="cli-token")
    process = subprocess.Popen(
        [sys.executable, "-m", "farm.cli", "api", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
        jobs = httpx.get(f"http://127.0.0.1:{port}/v1/jobs", headers={"Authorization": "Bearer cli-token"})
        assert jobs.status_code == 200 and "data" in jobs.json()
    finally:
        process.terminate()
        # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells why.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)


def test_production_without_a_token_exits_with_the_key_name(farm_settings: Settings) -> None:
    env = worker_env(farm_settings, FARM_ENV="production", FARM_API_TOKEN="")
    done = subprocess.run(
        [sys.executable, "-m", "farm.cli", "api"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "error: api_token: required in production" in done.stderr


def test_the_api_needs_no_numeric_stack_and_workers_need_no_api_packages() -> None:
    from tests.test_imports import imported_after

    api = imported_after("import farm.api")
    assert not {"torch", "numpy", "av", "faster_whisper", "ctranslate2"} & api
    worker_side = imported_after("import farm.io.delivery, farm.io.metrics, farm.io.webhooks")
    assert not {"prometheus_client", "fastapi", "uvicorn"} & worker_side
