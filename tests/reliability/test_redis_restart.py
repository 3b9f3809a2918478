"""Redis restarted in the middle of a run: workers and client reconnect, no job is lost.

Redis keeps an append-only file here (as a production Redis should), so the queue, the
unacknowledged jobs and the results survive the restart. A job submitted while Redis is
down fails fast with BrokerUnavailableError: the client does not retry on its own, the
caller decides (documented in docs/reliability.md).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from farm.config import Settings
from farm.errors import BrokerUnavailableError
from tests.reliability.conftest import PersistentRedis, own_farm, size, wait_all, wait_until
from tests.reliability.media import clip

pytestmark = pytest.mark.slow

PASSWORD = "restart-test-Pa55"
LIMITS = {"FARM_SOFT_TIME_LIMIT": "10", "FARM_TIME_LIMIT": "12", "FARM_VISIBILITY_TIMEOUT": "15"}


def test_redis_restart_mid_run_loses_no_job(farm_settings: Settings, redis_dir: Path, tmp_path: Path) -> None:
    count = size("RESTART_JOBS", 30)
    server = PersistentRedis(redis_dir, password=PASSWORD)
    server.start()
    audio = clip(tmp_path, 3.0)
    try:
        with own_farm(farm_settings, tmp_path, redis_url=server.url, FARM_CONCURRENCY="2", **LIMITS) as farm:
            jobs = farm.client.submit_many([audio] * count, beam_size=1, language="en")
            wait_until(lambda: sum(j.status().state == "succeeded" for j in jobs) >= count // 4, 120, "no progress")
            server.stop(signal.SIGKILL)
            down_at = time.monotonic()

            with pytest.raises(BrokerUnavailableError, match="cannot reach the broker") as refused:
                farm.client.submit(audio, beam_size=1)
            fail_s = time.monotonic() - down_at
            assert fail_s < 5 and PASSWORD not in str(refused.value)

            time.sleep(2)
            server.start()
            up_at = time.monotonic()
            done_before = sum(farm.executions().values())
            wait_until(lambda: sum(farm.executions().values()) > done_before, 60, "no job finished after the restart")
            resumed_s = time.monotonic() - up_at
            statuses = wait_all(farm.client, jobs, timeout=240)
            failed = [f"{s.state}: {s.error}" for s in statuses if s.state != "succeeded"]
            runs = farm.executions()
            lost = [j.id for j in jobs if runs[j.id] == 0]
            duplicated = [j.id for j in jobs if runs[j.id] > 1]
            assert not failed and not lost and not duplicated, (failed, lost, duplicated)
            assert PASSWORD not in farm.logs()
    finally:
        server.stop()
    print(
        f"redis kill -9 + restart: {count} jobs, 0 lost, 0 duplicated; submit while down failed in {fail_s:.2f} s;"
        f" first job done {resumed_s:.1f} s after Redis came back"
    )
