"""Time limits: a clean "timed out" failure, a hard kill of one child only, no double runs.

Small values stand in for the defaults (1800/1900/3600 s): soft 3 s, hard 5 s,
visibility 7 s, kept in the same order the settings check enforces.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import redis

from farm.config import Settings
from farm.errors import JobFailedError, JobTimeoutError
from farm.inference.batching import Batcher, BatchPolicy
from farm.inference.engines import load_engine
from farm.inference.engines.base import Engine, ProgressCallback, TranscribeOptions
from farm.inference.signal import Audio
from farm.job.transcript import Transcript
from farm.serve.runtime import engine_config
from tests.conftest import JFK_PHRASE, ROOT, normalise, worker_env
from tests.reliability.conftest import Farm, celery_processes, own_farm, wait_until
from tests.reliability.media import clip, jfk_samples

pytestmark = pytest.mark.slow

LIMITS = {"FARM_SOFT_TIME_LIMIT": "3", "FARM_TIME_LIMIT": "5", "FARM_VISIBILITY_TIMEOUT": "7"}
OPTIONS: dict[str, Any] = {"beam_size": 1, "language": "en"}


@pytest.fixture(scope="module")
def long_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Well over the 3 s soft limit on any CPU, and under fanout_above_s so it stays one job.
    return clip(tmp_path_factory.mktemp("audio"), 200.0, "long.wav")


@pytest.fixture(scope="module")
def prefork_farm(farm_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    directory = tmp_path_factory.mktemp("prefork")
    with own_farm(farm_settings, directory, FARM_POOL="prefork", FARM_CONCURRENCY="2", **LIMITS) as farm:
        yield farm


def test_soft_limit_fails_cleanly_and_the_job_is_not_run_again(prefork_farm: Farm, long_audio: Path) -> None:
    started = time.monotonic()
    job = prefork_farm.client.submit(long_audio, **OPTIONS)
    with pytest.raises(JobFailedError, match=r"timed out: the job ran longer than soft_time_limit \(3 s\)"):
        job.result(timeout=60)
    # Past the 7 s visibility timeout and a few 1 s restore sweeps: a job still held
    # unacknowledged would have been handed out again by now.
    time.sleep(max(0.0, started + 12 - time.monotonic()))
    assert prefork_farm.receptions()[job.id] == 1
    assert redis.Redis.from_url(prefork_farm.settings.broker_url).hlen("unacked") == 0


def test_hard_limit_kills_only_that_child(prefork_farm: Farm, long_audio: Path, tmp_path: Path) -> None:
    main, *children = celery_processes(prefork_farm.workers[0])
    victim = prefork_farm.client.submit(long_audio, **OPTIONS)
    wait_until(lambda: victim.status().state == "started", 30, "the job never started")
    stuck = _busiest(children)
    # Stopped, the child cannot act on the soft limit's signal, like a job stuck in native
    # code (a hung GPU kernel or network mount): only the hard limit can end it.
    stuck.suspend()
    others = prefork_farm.client.submit_many([clip(tmp_path, 4.0)] * 3, **OPTIONS)
    assert [job.result(timeout=60)["duration"] for job in others] == [4.0] * 3  # the other child kept serving

    with pytest.raises(JobFailedError) as failed:
        victim.result(timeout=60)
    print(f"hard limit: the user reads {str(failed.value)!r}")
    assert "TimeLimitExceeded" in repr(prefork_farm.client.app.AsyncResult(victim.id).info)
    wait_until(lambda: "Hard time limit (5s) exceeded" in prefork_farm.logs(), 10, "no hard time limit in the log")
    survivor = next(c.pid for c in children if c.pid != stuck.pid)

    def replaced() -> bool:
        pids = [p.pid for p in celery_processes(prefork_farm.workers[0])]
        return len(pids) == 3 and pids[0] == main.pid and survivor in pids and stuck.pid not in pids

    wait_until(replaced, 30, "the stuck child was not replaced, or another process went with it")


def _busiest(processes: list[psutil.Process]) -> psutil.Process:
    before = {p.pid: sum(p.cpu_times()[:2]) for p in processes}
    time.sleep(0.5)
    return max(processes, key=lambda p: sum(p.cpu_times()[:2]) - before[p.pid])


def test_threads_pool_soft_limit_is_a_clear_timeout(farm_settings: Settings, tmp_path: Path) -> None:
    limits = {"FARM_SOFT_TIME_LIMIT": "1", "FARM_TIME_LIMIT": "2", "FARM_VISIBILITY_TIMEOUT": "3"}
    with own_farm(farm_settings, tmp_path, FARM_CONCURRENCY="2", **limits) as farm:
        job = farm.client.submit(clip(tmp_path, 30.0, "long.wav"), **OPTIONS)
        with pytest.raises(JobFailedError, match=r"timed out: no transcript within 1 s"):
            job.result(timeout=60)
        # The dispatcher stops the abandoned clip at its next segment; the worker serves again.
        short = clip(tmp_path, 3.0)
        recovered = _first_success(farm, short, deadline_s=120)
    print(f"threads pool: soft limit -> 'timed out'; the worker served again {recovered:.1f} s later")


class SegmentSpy:
    """The real engine, noting the end of every segment it decodes, call by call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.multilingual = engine.multilingual
        self.calls: list[list[float]] = []

    def transcribe(
        self, batch: Sequence[Audio], options: TranscribeOptions, on_progress: ProgressCallback | None = None
    ) -> list[Transcript]:
        reached: list[float] = []
        self.calls.append(reached)

        def spy(seconds: float) -> None:
            reached.append(seconds)
            if on_progress is not None:
                on_progress(seconds)

        return self.engine.transcribe(batch, options, spy)


def test_an_abandoned_clip_frees_the_model_at_its_next_segment(farm_settings: Settings) -> None:
    spy = SegmentSpy(load_engine("ctranslate2", engine_config(replace(farm_settings, cpu_threads=2))))
    batcher = Batcher(spy, BatchPolicy(max_jobs=2), multilingual=False)
    options = TranscribeOptions(language="en", beam_size=1)
    long = np.tile(jfk_samples(), 19)  # 209 s: ten seconds or more of work on a CPU
    with pytest.raises(JobTimeoutError, match=r"no transcript within 1 s"):
        batcher.transcribe(long, options, timeout=1.0)
    started = time.monotonic()
    short = batcher.transcribe(jfk_samples(), options, timeout=60)
    took = time.monotonic() - started
    print(f"abandoned at 1 s after {max(spy.calls[0]):.0f} s of audio; the next job took {took:.1f} s")
    assert JFK_PHRASE in normalise(short.text)
    assert max(spy.calls[0]) < 100  # stopped at a segment soon after, not run to 209 s


def _first_success(farm: Farm, audio: Path, deadline_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            farm.client.submit(audio, **OPTIONS).result(timeout=30)
            return time.monotonic() - started
        except JobFailedError as exc:
            assert "timed out" in str(exc)
    raise AssertionError(f"no job succeeded within {deadline_s} s after a timeout")


def test_worker_refuses_a_visibility_timeout_below_the_hard_limit(farm_settings: Settings) -> None:
    env = worker_env(farm_settings, FARM_TIME_LIMIT="60", FARM_SOFT_TIME_LIMIT="50", FARM_VISIBILITY_TIMEOUT="30")
    done = subprocess.run(
        [sys.executable, "-m", "farm.cli", "worker"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "visibility_timeout: must be above time_limit or long jobs run twice" in done.stderr
    assert "Traceback" not in done.stderr
