"""``kill -9`` in the middle of jobs: every job still completes, exactly once.

Two ways a worker dies. A prefork child killed mid-job: Celery sees the lost child and,
with acks_late + reject_on_worker_lost, puts the job back at once. The whole worker
process killed (threads pool): nobody is left to reject, and kombu would hand the
unacknowledged jobs out again only after visibility_timeout (an hour as shipped); the
supervisor, which sees the process die, returns them to their queues at once
(farm.queue.recovery) and restarts the process.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from farm.config import Settings
from tests.reliability.conftest import Farm, celery_processes, own_farm, size, wait_all, wait_until
from tests.reliability.media import clip

pytestmark = pytest.mark.slow

# Small limits so a killed worker's jobs come back within seconds, not the default hour.
LIMITS = {"FARM_SOFT_TIME_LIMIT": "10", "FARM_TIME_LIMIT": "12", "FARM_VISIBILITY_TIMEOUT": "15"}


def _kill_mid_run(farm: Farm, audio: Path, jobs_count: int, victim_index: int) -> tuple[float, list[str]]:
    """Submit the jobs, SIGKILL one Celery process once a third are done; wait for all."""
    jobs = farm.client.submit_many([audio] * jobs_count, beam_size=1, language="en")
    wait_until(lambda: sum(j.status().state == "succeeded" for j in jobs) >= jobs_count // 3, 120, "no progress")
    victim = celery_processes(farm.workers[0])[victim_index]
    victim.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    statuses = wait_all(farm.client, jobs, timeout=180)
    failed = [f"{s.state}: {s.error}" for s in statuses if s.state != "succeeded"]
    assert not failed, failed
    return time.monotonic() - killed_at, [job.id for job in jobs]


def _assert_exactly_once(farm: Farm, job_ids: list[str]) -> None:
    runs = farm.executions()
    lost = [i for i in job_ids if runs[i] == 0]
    duplicated = {i: runs[i] for i in job_ids if runs[i] > 1}
    assert not lost and not duplicated, f"lost {lost}, duplicated {duplicated}"


def test_kill_9_of_a_prefork_child_requeues_its_job(farm_settings: Settings, tmp_path: Path) -> None:
    count = size("KILL_JOBS", 12)
    audio = clip(tmp_path, 6.0)
    extra = {"FARM_POOL": "prefork", "FARM_CONCURRENCY": "2", **LIMITS}
    with own_farm(farm_settings, tmp_path, **extra) as farm:
        recovery, ids = _kill_mid_run(farm, audio, count, victim_index=-1)  # the last pool child
        _assert_exactly_once(farm, ids)
        assert "WorkerLostError" in farm.logs()  # the kill really hit a running job
    print(f"prefork child kill -9: {count} jobs, 0 lost, 0 duplicated, all done {recovery:.1f} s after the kill")


def test_kill_9_of_the_worker_process_runs_its_jobs_again_within_30_s(farm_settings: Settings, tmp_path: Path) -> None:
    # Shipped defaults: visibility_timeout is an hour, so only the supervisor's reclaim brings them back soon.
    count = size("KILL_JOBS", 12)
    audio = clip(tmp_path, 6.0)
    with own_farm(farm_settings, tmp_path, FARM_CONCURRENCY="2") as farm:
        assert farm.settings.visibility_timeout == 3600
        jobs = farm.client.submit_many([audio] * count, beam_size=1, language="en")
        ids = [job.id for job in jobs]
        wait_until(lambda: len(_held(farm, ids)) >= 1 and len(farm.executions()) >= count // 4, 180, "no progress")
        held = _held(farm, ids)
        celery_processes(farm.workers[0])[0].send_signal(signal.SIGKILL)  # threads pool: the only process
        killed_at = time.monotonic()
        wait_until(lambda: all(farm.receptions()[i] >= 2 for i in held), 30, f"{held} not running again in 30 s")
        back_in = time.monotonic() - killed_at
        statuses = wait_all(farm.client, jobs, timeout=300)
        assert [s.state for s in statuses] == ["succeeded"] * count, [s.error for s in statuses]
        _assert_exactly_once(farm, ids)
        assert "returned" in farm.logs() and "killed by SIGKILL" in farm.logs()
    print(f"worker kill -9, shipped defaults: {len(held)} held jobs running again {back_in:.1f} s after the kill")


def _held(farm: Farm, ids: list[str]) -> list[str]:
    """Jobs the worker received and has not finished."""
    received, done = farm.receptions(), farm.executions()
    return [i for i in ids if received[i] >= 1 and done[i] == 0]
