"""Run one job: fetch the audio, decode it, transcribe it, shape the result.

This is the whole worker-side pipeline minus Celery, so tests and benchmarks can run a
job in process exactly as a worker would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from farm import audio as audio_io
from farm.engines.base import Audio, ProgressCallback, TranscribeOptions
from farm.jobs import JobSpec, parse_job, result_payload
from farm.storage import S3Config, storage_for
from farm.transcript import Transcript

# Called with the percentage (0-100) of the job's audio done.
PercentCallback = Callable[[float], None]


class Transcriber(Protocol):
    """How a job reaches the engine: directly, or through the cross-job batcher."""

    def transcribe(
        self,
        audio: Audio,
        options: TranscribeOptions,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> Transcript: ...

    def job(self) -> AbstractContextManager[None]:
        """Held for the whole of a job, audio decoding included."""
        ...


@dataclass(frozen=True)
class Runtime:
    """What a worker process builds once at start and reuses for every job."""

    transcriber: Transcriber
    engine_name: str
    model: str
    defaults: TranscribeOptions
    inline_limit: int
    s3: S3Config
    timeout_s: float | None = None


def run_job(message: Any, runtime: Runtime, on_percent: PercentCallback) -> dict[str, Any]:
    with runtime.transcriber.job():
        return _run_job(message, runtime, on_percent)


def _run_job(message: Any, runtime: Runtime, on_percent: PercentCallback) -> dict[str, Any]:
    started = time.perf_counter()
    spec = parse_job(message, runtime.defaults, runtime.inline_limit)
    samples = load_audio(spec, runtime.s3)
    seconds = max(audio_io.duration(samples), 1e-6)
    on_percent(0.0)
    report = _throttled(lambda done: on_percent(min(100.0, 100.0 * done / seconds)))
    transcript = runtime.transcriber.transcribe(samples, spec.options, report, runtime.timeout_s)
    on_percent(100.0)
    total = time.perf_counter() - started
    return result_payload(transcript, spec, runtime.engine_name, runtime.model, total)


def load_audio(spec: JobSpec, s3: S3Config) -> Audio:
    if spec.inline_audio is not None:
        return audio_io.decode(spec.inline_audio)
    return audio_io.decode(storage_for(spec.audio, s3).read(spec.audio))


def _throttled(report: Callable[[float], None], min_interval: float = 0.5) -> Callable[[float], None]:
    # Each report is a Redis write; a long file yields hundreds of segments.
    last = [0.0]

    def maybe_report(done: float) -> None:
        now = time.monotonic()
        if now - last[0] >= min_interval:
            last[0] = now
            report(done)

    return maybe_report
