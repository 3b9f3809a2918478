"""Time limits: a clean "timed out" failure, a hard kill of one child only, no double runs.

Small values stand in for the defaults (1800/1900/3600 s), kept in the order the settings
check enforces (soft < hard < visibility). They are derived from the time one 30 s window
takes to decode on this machine now, measured first: the soft limit's exception only
surfaces between engine calls, so the gap to the hard limit must hold a few of them even
with other work on the CPUs (fixed 3 s / 5 s limits failed on a busy 2-core machine).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
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
from farm.inference.engines.base import Engine, Progress, ProgressCallback, TranscribeOptions
from farm.inference.signal import Audio
from farm.job.transcript import Transcript
from farm.serve.runtime import engine_config
from tests.conftest import JFK_PHRASE, ROOT, normalise, worker_env
from tests.reliability.conftest import Farm, celery_processes, own_farm, wait_until
from tests.reliability.media import clip, jfk_samples

pytestmark = pytest.mark.slow

OPTIONS: dict[str, Any] = {"beam_size": 1, "language": "en"}
WINDOW_S = 30.0  # Whisper decodes audio in windows of this length; a short clip costs one
# Load comes and goes: a job may run this many times faster than the measured window.
SPEEDUP = 8


@dataclass(frozen=True)
class Limits:
    """Time limits and waits scaled to how fast this machine decodes right now."""

    window_s: float  # wall seconds one 30 s window took to decode, measured

    soft: int = 3  # prefork: any long job passes it

    @property
    def hard(self) -> int:
        # The soft limit's exception waits for the engine call under way: leave room for several.
        return self.soft + max(2, math.ceil(4 * self.window_s))

    @property
    def threads_soft(self) -> int:
        # Threads pool: the soft limit bounds every job, so a short one (one window) must fit well.
        return math.ceil(3 * self.window_s) + 1

    @property
    def visibility(self) -> int:
        return self.hard + 2

    def env(self, soft: int | None = None, hard: int | None = None) -> dict[str, str]:
        soft, hard = soft or self.soft, hard or self.hard
        limits = {"FARM_SOFT_TIME_LIMIT": soft, "FARM_TIME_LIMIT": hard, "FARM_VISIBILITY_TIMEOUT": hard + 2}
        # No fan-out: the long audio must stay one job, however long it has to be.
        return {"FARM_FANOUT_ABOVE_S": "0", **{key: str(value) for key, value in limits.items()}}

    def audio_beyond(self, seconds: float) -> float:
        """Seconds of audio that take longer than ``seconds`` to decode even on a machine
        ``SPEEDUP`` times faster than measured (the job stops at its limit, not at the end)."""
        return WINDOW_S * (math.ceil(SPEEDUP * seconds / self.window_s) + 2)

    def wait(self, windows: int) -> float:
        """A generous wait for ``windows`` windows of work, queueing and start-up included."""
        return 60 + 4 * windows * self.window_s


@pytest.fixture(scope="module")
def limits(farm_settings: Settings) -> Limits:
    engine = load_engine("ctranslate2", engine_config(replace(farm_settings, cpu_threads=1)))
    window = np.tile(jfk_samples(), 3)[: int(WINDOW_S * 16_000)]
    options = TranscribeOptions(language="en", beam_size=1)
    engine.transcribe([window], options)  # the first call warms up
    started = time.monotonic()
    engine.transcribe([window], options)
    measured = Limits(time.monotonic() - started)
    print(f"one 30 s window: {measured.window_s:.2f} s -> hard limit {measured.hard} s (soft {measured.soft} s)")
    return measured


@pytest.fixture(scope="module")
def long_audio(tmp_path_factory: pytest.TempPathFactory, limits: Limits) -> Path:
    return clip(tmp_path_factory.mktemp("audio"), limits.audio_beyond(limits.soft), "long.wav")


@pytest.fixture(scope="module")
def prefork_farm(farm_settings: Settings, tmp_path_factory: pytest.TempPathFactory, limits: Limits) -> Iterator[Farm]:
    directory = tmp_path_factory.mktemp("prefork")
    with own_farm(farm_settings, directory, FARM_POOL="prefork", FARM_CONCURRENCY="2", **limits.env()) as farm:
        yield farm


def test_soft_limit_fails_cleanly_and_the_job_is_not_run_again(
    prefork_farm: Farm, long_audio: Path, limits: Limits
) -> None:
    started = time.monotonic()
    job = prefork_farm.client.submit(long_audio, **OPTIONS)
    message = rf"timed out: the job ran longer than soft_time_limit \({limits.soft} s\)"
    with pytest.raises(JobFailedError, match=message):
        job.result(timeout=limits.hard + limits.wait(1))
    # Past the visibility timeout and a few 1 s restore sweeps: a job still held
    # unacknowledged would have been handed out again by now.
    time.sleep(max(0.0, started + limits.visibility + 5 - time.monotonic()))
    assert prefork_farm.receptions()[job.id] == 1
    assert redis.Redis.from_url(prefork_farm.settings.broker_url).hlen("unacked") == 0


def test_hard_limit_kills_only_that_child(prefork_farm: Farm, long_audio: Path, tmp_path: Path, limits: Limits) -> None:
    main, *children = celery_processes(prefork_farm.workers[0])
    victim = prefork_farm.client.submit(long_audio, **OPTIONS)
    wait_until(lambda: victim.status().state == "started", limits.wait(1), "the job never started")
    stuck = _busiest(children)
    # Stopped, the child cannot act on the soft limit's signal, like a job stuck in native
    # code (a hung GPU kernel or network mount): only the hard limit can end it.
    stuck.suspend()
    others = prefork_farm.client.submit_many([clip(tmp_path, 4.0)] * 3, **OPTIONS)
    durations = [job.result(timeout=limits.wait(3))["duration"] for job in others]
    assert durations == [4.0] * 3  # the other child kept serving

    with pytest.raises(JobFailedError) as failed:
        victim.result(timeout=limits.hard + limits.wait(1))
    print(f"hard limit: the user reads {str(failed.value)!r}")
    assert "TimeLimitExceeded" in repr(prefork_farm.client.app.AsyncResult(victim.id).info)
    logged = f"Hard time limit ({limits.hard}s) exceeded"
    wait_until(lambda: logged in prefork_farm.logs(), 10, "no hard time limit in the log")
    survivor = next(c.pid for c in children if c.pid != stuck.pid)

    def replaced() -> bool:
        pids = [p.pid for p in celery_processes(prefork_farm.workers[0])]
        return len(pids) == 3 and pids[0] == main.pid and survivor in pids and stuck.pid not in pids

    wait_until(replaced, limits.wait(1), "the stuck child was not replaced, or another process went with it")


def _busiest(processes: list[psutil.Process]) -> psutil.Process:
    before = {p.pid: sum(p.cpu_times()[:2]) for p in processes}
    time.sleep(0.5)
    return max(processes, key=lambda p: sum(p.cpu_times()[:2]) - before[p.pid])


def test_threads_pool_soft_limit_is_a_clear_timeout(farm_settings: Settings, tmp_path: Path, limits: Limits) -> None:
    soft = limits.threads_soft
    with own_farm(farm_settings, tmp_path, FARM_CONCURRENCY="2", **limits.env(soft, soft + 1)) as farm:
        job = farm.client.submit(clip(tmp_path, limits.audio_beyond(soft), "long.wav"), **OPTIONS)
        with pytest.raises(JobFailedError, match=rf"timed out: no transcript within {soft} s"):
            job.result(timeout=soft + limits.wait(1))
        # The dispatcher stops the abandoned clip at its next segment; the worker serves again.
        short = clip(tmp_path, 3.0)
        recovered = _first_success(farm, short, deadline_s=limits.wait(4))
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

        def spy(progress: Progress) -> None:
            reached.append(progress.seconds)
            if on_progress is not None:
                on_progress(progress)

        return self.engine.transcribe(batch, options, spy)


def test_an_abandoned_clip_frees_the_model_at_its_next_segment(farm_settings: Settings, limits: Limits) -> None:
    spy = SegmentSpy(load_engine("ctranslate2", engine_config(replace(farm_settings, cpu_threads=2))))
    batcher = Batcher(spy, BatchPolicy(max_jobs=2), multilingual=False)
    options = TranscribeOptions(language="en", beam_size=1)
    long = np.tile(jfk_samples(), 19)  # 209 s: ten seconds or more of work on a CPU
    with pytest.raises(JobTimeoutError, match=r"no transcript within 1 s"):
        batcher.transcribe(long, options, timeout=1.0)
    started = time.monotonic()
    short = batcher.transcribe(jfk_samples(), options, timeout=limits.wait(2))
    took = time.monotonic() - started
    print(f"abandoned at 1 s after {max(spy.calls[0]):.0f} s of audio; the next job took {took:.1f} s")
    assert JFK_PHRASE in normalise(short.text)
    assert max(spy.calls[0]) < 100  # stopped at a segment soon after, not run to 209 s


def _first_success(farm: Farm, audio: Path, deadline_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            farm.client.submit(audio, **OPTIONS).result(timeout=deadline_s)
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
