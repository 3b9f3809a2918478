"""Memory: many consecutive jobs do not grow a worker, and prefork children get recycled."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.config import Settings
from tests.reliability.conftest import own_farm, size, tree_rss_mb, wait_all, wait_until
from tests.reliability.media import clip

pytestmark = pytest.mark.slow

LOADED = "loaded ctranslate2 model"


def test_rss_stays_flat_over_consecutive_jobs(farm_settings: Settings, tmp_path: Path) -> None:
    count = size("MEMORY_JOBS", 60)
    warm_up = max(10, count // 5)
    clips = [clip(tmp_path, 2.0 + (i % 4), offset=i % 7) for i in range(4)]  # a few lengths and contents
    with own_farm(farm_settings, tmp_path, FARM_CONCURRENCY="2") as farm:
        pid = farm.workers[0].process.pid
        warm = [farm.client.submit(clips[i % 4], beam_size=1, language="en") for i in range(warm_up)]
        wait_all(farm.client, warm, timeout=300)
        baseline = tree_rss_mb(pid)
        peak = baseline
        jobs = [farm.client.submit(clips[i % 4], beam_size=1, language="en") for i in range(count - warm_up)]
        for job in jobs:
            job.result(timeout=300)
            peak = max(peak, tree_rss_mb(pid))
        final = tree_rss_mb(pid)
    growth = (final - baseline) / baseline
    print(
        f"memory: {count} jobs ({warm_up} warm-up), RSS {baseline:.0f} -> {final:.0f} MiB"
        f" ({growth:+.1%}), peak {peak:.0f} MiB"
    )
    assert growth < 0.10


def _loads(log: str) -> int:
    return log.count(LOADED)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("FARM_MAX_TASKS_PER_CHILD", "2"), ("FARM_MAX_MEMORY_PER_CHILD", "1")],  # 1 KiB: over it after every job
)
def test_prefork_children_are_recycled(farm_settings: Settings, tmp_path: Path, setting: str, value: str) -> None:
    audio = clip(tmp_path, 2.0)
    extra = {"FARM_POOL": "prefork", "FARM_CONCURRENCY": "1", setting: value}
    with own_farm(farm_settings, tmp_path, **extra) as farm:
        worker = farm.workers[0]
        wait_until(lambda: _loads(worker.output()) == 1, 60, "the first child never loaded the model")
        for _ in range(4):  # one after the other: each job lands on whatever child is current
            farm.client.submit(audio, beam_size=1, language="en").result(timeout=120)
        expected = 3 if setting == "FARM_MAX_TASKS_PER_CHILD" else 4  # a new child (and model) per 2 jobs, or per job
        wait_until(lambda: _loads(worker.output()) >= expected, 60, f"children were not recycled:\n{worker.output()}")
