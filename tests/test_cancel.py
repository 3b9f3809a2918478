"""Cancellation that holds: kept in Redis, honoured by workers that start later and between parts."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from celery.result import AsyncResult
from celery.states import READY_STATES

from farm.client import Client
from farm.config import Settings
from farm.serve.redis_server import start_redis
from tests.api.servers import webhook_receiver
from tests.conftest import EVAL, JFK, own_farm

pytestmark = pytest.mark.slow

LONG = EVAL / "longform" / "librispeech_test-other_dev_50utt.flac"  # 406 s: five parts of ~100 s
FANOUT = {"FARM_CPU_THREADS": "1", "FARM_FANOUT_ABOVE_S": "60", "FARM_FANOUT_PART_S": "100", "FARM_CONCURRENCY": "1"}
_PART_DONE = re.compile(r"Task farm\.transcribe_part\[[0-9a-f-]{36}\] succeeded")


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_job_cancelled_before_any_worker_started_never_runs(farm_settings: Settings, tmp_path: Path) -> None:
    server = start_redis()
    try:
        with webhook_receiver() as receiver:
            early = Client(_on(farm_settings, server.url))
            cancelled = early.submit(JFK, beam_size=1, callback_url=receiver.url)
            cancelled.cancel()  # no worker alive: Celery's revoke broadcast reaches nobody
            early.close()
            with own_farm(farm_settings, tmp_path, redis_url=server.url) as farm:  # workers start after
                later = farm.client.submit(JFK, beam_size=1, callback_url=receiver.url)
                later.result(timeout=300)
                backend = AsyncResult(cancelled.id, app=farm.client.app)
                wait_until(lambda: backend.state in READY_STATES, 60, "the worker never drew the cancelled job")
                events = [call.json() for call in receiver.wait_for(1)]
                assert backend.state == "REVOKED"
                assert farm.executions()[cancelled.id] == 0 and farm.executions()[later.id] == 1
                assert farm.client.job(cancelled.id).status().state == "cancelled"
            assert [(e["id"], e["status"]) for e in events] == [(later.id, "succeeded")]
    finally:
        server.stop()


def test_a_fanned_out_job_stops_between_parts(farm_settings: Settings, tmp_path: Path) -> None:
    with own_farm(farm_settings, tmp_path, **FANOUT) as farm:
        job = farm.client.submit(LONG, language="en", beam_size=1)
        wait_until(lambda: _PART_DONE.search(farm.logs()), 600, "no part of the long job finished")
        job.cancel()
        backend = AsyncResult(job.id, app=farm.client.app)
        wait_until(lambda: backend.state in READY_STATES, 600, f"the job is still {backend.state}")
        time.sleep(1.0)  # room for a part that should not run
        parts_done = len(_PART_DONE.findall(farm.logs()))
        assert 1 <= parts_done < 5, farm.logs()  # the parts after the cancel never ran
        assert backend.state == "REVOKED"
        assert farm.client.job(job.id).status().state == "cancelled"
        assert "merge_parts" not in "".join(line for line in farm.logs().splitlines() if "succeeded" in line)


def _on(settings: Settings, url: str) -> Settings:
    from dataclasses import replace

    return replace(settings, broker_url=url, result_backend=url)
