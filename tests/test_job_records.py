"""Every submitted id is recorded: unknown ids are not "queued", and idempotency keys name one job."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis

from farm.client import Client
from farm.config import Settings
from farm.constants import SHARED_QUEUE
from farm.errors import JobNotFoundError
from farm.serve.redis_server import RedisServer, start_redis
from tests.conftest import JFK, ROOT, worker_env


@pytest.fixture()
def lonely(farm_settings: Settings) -> Iterator[tuple[Settings, RedisServer]]:
    """Settings on a Redis no worker consumes: jobs stay queued."""
    server = start_redis()
    try:
        yield replace(farm_settings, broker_url=server.url, result_backend=server.url), server
    finally:
        server.stop()


def queued_messages(url: str) -> int:
    return int(redis.Redis.from_url(url).llen(SHARED_QUEUE))


def test_an_unknown_id_is_unknown_and_a_submitted_one_queued(lonely: tuple[Settings, RedisServer]) -> None:
    settings, _ = lonely
    client = Client(settings)
    try:
        job = client.submit(JFK, beam_size=1)
        assert job.status().state == "queued"
        assert client.job("not-a-job").status().state == "unknown"
        started = time.monotonic()
        with pytest.raises(JobNotFoundError, match="no job not-a-job"):
            client.job("not-a-job").result(timeout=60)
        assert time.monotonic() - started < 10  # at once, not after the timeout
    finally:
        client.close()


def test_the_same_idempotency_key_returns_the_same_job(lonely: tuple[Settings, RedisServer]) -> None:
    settings, _ = lonely
    client = Client(settings)
    try:
        first = client.submit(JFK, beam_size=1, idempotency_key="upload-42")
        again = client.submit(JFK, beam_size=1, idempotency_key="upload-42")
        other = client.submit(JFK, beam_size=1, idempotency_key="upload-43")
    finally:
        client.close()
    assert again.id == first.id and again.reused and not first.reused
    assert other.id != first.id
    assert queued_messages(settings.broker_url) == 2


def test_cli_status_and_result_of_an_unknown_id(lonely: tuple[Settings, RedisServer]) -> None:
    settings, _ = lonely
    env = worker_env(settings)
    status = _farm("status", "not-a-job", env=env)
    assert status.returncode == 1 and "no job not-a-job" in status.stderr and not status.stdout, status
    client = Client(settings)
    try:
        job = client.submit(JFK, beam_size=1, queue="farm.gpu0")
    finally:
        client.close()
    waiting = _farm("status", job.id, env=env)
    assert waiting.stdout.strip() == f"{job.id} queued 0% (no worker is consuming farm.gpu0)", waiting
    started = time.monotonic()
    result = _farm("result", "not-a-job", "--timeout", "120", env=env)
    assert time.monotonic() - started < 60  # not the 120 s timeout
    assert result.returncode == 1 and result.stderr.startswith("error: no job not-a-job"), result
    assert "Traceback" not in result.stderr


def _farm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "farm.cli", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)
