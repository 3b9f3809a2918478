"""SIGTERM to `farm worker`: running jobs finish, queued ones wait for the next worker."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis

from farm.config import Settings
from farm.constants import SHARED_QUEUE
from tests.reliability.conftest import own_farm, wait_all, wait_until
from tests.reliability.media import clip

pytestmark = pytest.mark.slow


def test_sigterm_finishes_running_jobs_and_leaves_queued_ones(farm_settings: Settings, tmp_path: Path) -> None:
    running_audio = clip(tmp_path, 45.0, "long.wav")  # a few seconds of work: still running at SIGTERM
    queued_audio = clip(tmp_path, 4.0)
    with own_farm(farm_settings, tmp_path, FARM_CONCURRENCY="1") as farm:
        running = farm.client.submit(running_audio, beam_size=1, language="en")
        queued = farm.client.submit_many([queued_audio] * 3, beam_size=1, language="en")
        wait_until(lambda: running.status().state == "started", 60, "the first job never started")
        worker = farm.workers[0]
        worker.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        assert worker.process.wait(timeout=120) == 0, worker.output()
        drain_s = time.monotonic() - stopped_at

        assert running.status().state == "succeeded", worker.output()
        assert [j.status().state for j in queued] == ["queued"] * 3
        broker = redis.Redis.from_url(farm.settings.broker_url)
        assert broker.llen(SHARED_QUEUE) == 3 and broker.hlen("unacked") == 0

        farm.start_worker(FARM_CONCURRENCY="1")
        statuses = wait_all(farm.client, queued, timeout=120)
        assert [s.state for s in statuses] == ["succeeded"] * 3
        runs = farm.executions()
        assert all(runs[j.id] == 1 for j in [running, *queued]), runs
    print(f"SIGTERM: running job finished ({drain_s:.1f} s to exit), 3 queued stayed queued, served by the next worker")
