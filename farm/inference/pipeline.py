"""Run one job: fetch the audio, decode it, transcribe it, shape the result.

This is the whole worker-side pipeline minus Celery, so tests and benchmarks can run a
job in process exactly as a worker would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from farm.inference import audio as audio_io
from farm.inference import chunking, vad
from farm.inference.engines.base import Progress, ProgressCallback, TranscribeOptions
from farm.inference.signal import Audio
from farm.io.roots import Roots, check_output_directory
from farm.io.storage import S3Config, storage_for
from farm.job.languages import check_english_only
from farm.job.progress import JobProgress
from farm.job.result import Result, result_payload
from farm.job.spec import JobSpec, PartSpec, parse_job
from farm.job.transcript import Segment, Transcript, joined_text

# Called with the share of the job's audio done and its text so far, at most every 0.5 s.
JobProgressCallback = Callable[[JobProgress], None]
T = TypeVar("T")


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
class FanoutPolicy:
    """Files longer than ``above_s`` are cut into parts of about ``part_s`` seconds."""

    above_s: float
    part_s: float


@dataclass(frozen=True)
class FanOut:
    """The job is long: run these parts on any workers, then merge in order."""

    parts: list[PartSpec]
    duration: float


@dataclass(frozen=True)
class Runtime:
    """What a worker process builds once at start and reuses for every job."""

    transcriber: Transcriber
    engine_name: str
    model: str
    defaults: TranscribeOptions
    inline_limit: int
    s3: S3Config
    roots: Roots
    timeout_s: float | None = None
    fanout: FanoutPolicy | None = None
    multilingual: bool = True  # False: the engine's model knows English only (tiny.en)

    def parse(self, message: Any) -> JobSpec:
        """The job message from the queue, validated once; a bad one is a permanent InvalidJobError."""
        return parse_job(message, self.defaults, self.inline_limit)


def run_job(spec: JobSpec, runtime: Runtime, on_progress: JobProgressCallback, job_id: str = "") -> Result | FanOut:
    """Transcribe the job's audio, or (for a long file) say how to split it into parts."""
    with runtime.transcriber.job():
        return _run_job(spec, runtime, on_progress, job_id)


def _run_job(spec: JobSpec, runtime: Runtime, on_progress: JobProgressCallback, job_id: str) -> Result | FanOut:
    started = time.perf_counter()
    if not runtime.multilingual:
        check_english_only(runtime.model, spec.options.language, spec.options.task)
    check_output_directory(spec.delivery.output, runtime.roots)
    samples = load_audio(spec, runtime.s3, runtime.roots)
    if spec.part is None and runtime.fanout is not None and audio_io.duration(samples) > runtime.fanout.above_s:
        return _fan_out(samples, runtime.fanout, job_id)
    transcript = _transcribe(samples, spec, runtime, on_progress)
    if spec.part is not None:
        transcript = shifted(transcript, spec.part.start)
    return result_payload(transcript, spec, runtime.engine_name, runtime.model, time.perf_counter() - started)


def _transcribe(samples: Audio, spec: JobSpec, runtime: Runtime, on_progress: JobProgressCallback) -> Transcript:
    seconds = max(audio_io.duration(samples), 1e-6)

    def job_progress(progress: Progress) -> None:
        on_progress(JobProgress(min(100.0, 100.0 * progress.seconds / seconds), joined_text(progress.segments)))

    report = _throttled(job_progress)
    transcript = runtime.transcriber.transcribe(samples, spec.options, report, runtime.timeout_s)
    if vad.looks_doubtful(transcript) and vad.available():
        transcript = vad.without_invented_text(transcript, samples)
    transcript = within(transcript, audio_io.duration(samples))
    on_progress(JobProgress(100.0, transcript.text))
    return transcript


def _fan_out(samples: Audio, policy: FanoutPolicy, job_id: str) -> FanOut:
    duration = audio_io.duration(samples)
    spans = chunking.part_spans(duration, vad.speech_spans(samples), policy.part_s)
    parts = [PartSpec(i, len(spans), span.start, span.end, job_id, duration) for i, span in enumerate(spans)]
    return FanOut(parts, duration)


def within(transcript: Transcript, duration: float) -> Transcript:
    """Whisper may stamp the last segment past the end of the audio; cap it there."""
    segments = tuple(_capped_segment(segment, duration) for segment in transcript.segments)
    return replace(transcript, segments=segments)


def _capped_segment(segment: Segment, duration: float) -> Segment:
    words = tuple(replace(w, start=min(w.start, duration), end=min(w.end, duration)) for w in segment.words)
    return replace(segment, start=min(segment.start, duration), end=min(segment.end, duration), words=words)


def shifted(transcript: Transcript, offset: float) -> Transcript:
    """Times relative to the whole file instead of to the part."""
    segments = tuple(_shift_segment(segment, offset) for segment in transcript.segments)
    return replace(transcript, segments=segments)


def _shift_segment(segment: Segment, offset: float) -> Segment:
    words = tuple(replace(w, start=round(w.start + offset, 3), end=round(w.end + offset, 3)) for w in segment.words)
    return replace(segment, start=round(segment.start + offset, 3), end=round(segment.end + offset, 3), words=words)


def load_audio(spec: JobSpec, s3: S3Config, roots: Roots) -> Audio:
    """The job's audio; a part's own stretch of the file only."""
    start, end = (spec.part.start, spec.part.end) if spec.part is not None else (0.0, None)
    if spec.inline_audio is not None:
        return audio_io.decode(spec.inline_audio, start, end, spec.name)
    return audio_io.decode(storage_for(spec.audio, s3, roots).read(spec.audio), start, end, spec.name)


def _throttled(report: Callable[[T], None], min_interval: float = 0.5) -> Callable[[T], None]:
    # Each report is a Redis write; a long file yields hundreds of segments. The first
    # waits a whole interval too, so a short clip makes no write before its result.
    last = [time.monotonic()]

    def maybe_report(done: T) -> None:
        now = time.monotonic()
        if now - last[0] >= min_interval:
            last[0] = now
            report(done)

    return maybe_report
