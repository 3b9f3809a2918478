"""`farm metrics` listens where it is told and asks for the API's token, like the API's /metrics."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from farm.config import Settings
from farm.serve.redis_server import free_port
from tests.conftest import ROOT, worker_env

TOKEN = "metrics-token-123"


def _status(url: str, token: str = "") -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_listening(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "farm metrics exited"
        try:
            _status(url)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing answered at {url}")


def test_farm_metrics_binds_the_configured_host_and_wants_the_token(farm_settings: Settings) -> None:
    port = free_port()
    env = worker_env(farm_settings, FARM_METRICS_PORT=str(port), FARM_API_HOST="127.0.0.2", FARM_API_TOKEN=TOKEN)
    process = subprocess.Popen([sys.executable, "-m", "farm.cli", "metrics"], env=env, cwd=ROOT)
    url = f"http://127.0.0.2:{port}/metrics"
    try:
        _wait_listening(url, process)
        refused, body = _status(url)
        assert refused == 401 and "bearer token" in body
        assert _status(url, "wrong")[0] == 401
        status, text = _status(url, TOKEN)
        assert status == 200 and "farm_queue_depth" in text
        with pytest.raises(urllib.error.URLError):  # not on every interface
            _status(f"http://127.0.0.1:{port}/metrics", TOKEN)
    finally:
        process.terminate()
        process.wait(timeout=30)
