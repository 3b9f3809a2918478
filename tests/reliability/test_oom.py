"""Out of memory: the dispatcher halves the batch and retries, down to one window.

No GPU here, so ``max_batch_audio_s`` stands in for the device's memory: an engine call
over it raises the same ResourceExhaustedError a CUDA out-of-memory becomes, before the
engine is touched, and takes the same path through the dispatcher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from farm.config import Settings
from farm.errors import JobFailedError, ResourceExhaustedError
from farm.inference.batching import Batcher, BatchPolicy
from farm.inference.engines import load_engine
from farm.inference.engines.base import Engine
from farm.inference.signal import Audio
from farm.job.transcript import TranscribeOptions, Transcript
from farm.serve.runtime import engine_config
from tests.conftest import JFK_PHRASE, normalise
from tests.reliability.conftest import own_farm
from tests.reliability.media import clip, jfk_samples

pytestmark = pytest.mark.slow

OPTIONS = TranscribeOptions(language="en", beam_size=1)


@pytest.fixture(scope="module")
def engine(farm_settings: Settings) -> Engine:
    return load_engine("ctranslate2", engine_config(replace(farm_settings, cpu_threads=2)))


@pytest.fixture(scope="module")
def jfk() -> Audio:
    return jfk_samples()


def _together(batcher: Batcher, clips: list[Audio]) -> list[Transcript | BaseException]:
    """Hand every clip in at once, so the dispatcher packs them into one round."""
    ready = threading.Barrier(len(clips))

    def one(audio: Audio) -> Transcript | BaseException:
        with batcher.job():  # counted as on its way before any clip arrives
            ready.wait()
            try:
                return batcher.transcribe(audio, OPTIONS, timeout=120)
            except Exception as exc:
                return exc

    with ThreadPoolExecutor(len(clips)) as pool:
        return list(pool.map(one, clips))


def _four_jobs(speech: Audio) -> list[Audio]:
    # Four different recordings of the same speech (identical ones are decoded once).
    return [speech * (1.0 - index / 100) for index in range(4)]


@pytest.fixture()
def warnings(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="farm.inference.batching"):
        yield caplog


def test_an_oversized_batch_is_halved_and_every_job_succeeds(
    engine: Engine, jfk: Audio, warnings: pytest.LogCaptureFixture
) -> None:
    # Four 11 s clips pack two to a window: one call of 2 windows (45 s) is over 30 s.
    policy = BatchPolicy(max_jobs=4, batch_size=4, wait_s=5.0, max_batch_audio_s=30)
    results = _together(Batcher(engine, policy, multilingual=False), _four_jobs(jfk))
    assert all(isinstance(r, Transcript) and JFK_PHRASE in normalise(r.text) for r in results), results
    assert "retrying the batch of 2 windows as 1 + 1" in warnings.text


def test_a_single_window_over_budget_fails_with_the_retryable_error(
    engine: Engine, jfk: Audio, warnings: pytest.LogCaptureFixture
) -> None:
    policy = BatchPolicy(max_jobs=4, batch_size=4, wait_s=5.0, max_batch_audio_s=10)
    results = _together(Batcher(engine, policy, multilingual=False), _four_jobs(jfk))
    assert all(isinstance(r, ResourceExhaustedError) for r in results), results
    assert "over max_batch_audio_s (10 s)" in str(results[0])
    assert "as 1 + 1" in warnings.text  # halved first, failed only at one window


def test_the_farm_retries_then_reports_out_of_memory(farm_settings: Settings, tmp_path: Path) -> None:
    extra = {"FARM_MAX_BATCH_AUDIO_S": "5", "FARM_TASK_MAX_RETRIES": "1"}
    with own_farm(farm_settings, tmp_path, **extra) as farm:
        job = farm.client.submit(clip(tmp_path, 8.0), beam_size=1, language="en")
        with pytest.raises(JobFailedError, match=r"out of memory: .* over max_batch_audio_s \(5 s\)"):
            job.result(timeout=120)
        assert farm.receptions()[job.id] == 2  # the first try and one retry
        # A clip under the budget still goes through on the same worker.
        assert farm.client.submit(clip(tmp_path, 3.0), beam_size=1, language="en").result(timeout=60)["text"]
