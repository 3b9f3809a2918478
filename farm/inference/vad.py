"""Where people speak: Silero VAD (the ONNX model faster-whisper ships), in seconds.

Used to return nothing for silence or music instead of letting Whisper invent words,
and to cut long files between utterances rather than through them. Checked on the 154
short clips in ../shared/eval: VAD found speech in exactly those with a non-empty human
transcript (the silent Swedish clip included).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from functools import cache

from farm.inference.signal import SAMPLE_RATE, Audio
from farm.job.transcript import Transcript


@dataclass(frozen=True)
class Span:
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@cache
def available() -> bool:
    """Whether this host can run the VAD: faster-whisper and ONNX Runtime are installed.

    Every worker install has them (whisperfarm[worker]); the air-gapped GPU benchmark host
    has torch and transformers only (docs/gpu.md), and there the checks that need VAD
    are skipped rather than failing every job.
    """
    return all(importlib.util.find_spec(name) is not None for name in ("faster_whisper", "onnxruntime"))


def speech_spans(audio: Audio, min_silence_ms: int = 300) -> list[Span]:
    """Stretches of speech, padded a little so word edges are kept."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=min_silence_ms, speech_pad_ms=200)
    stamps = get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)
    return [Span(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def warm() -> None:
    """Load the VAD model now: with its runtime about 30 MiB, which would otherwise show
    up in the middle of some later job as growth of the worker process."""
    from faster_whisper.vad import get_vad_model

    get_vad_model()


def looks_doubtful(transcript: Transcript) -> bool:
    """Cheap signs that Whisper may have invented words: few words, or likely silence.

    Speech runs at 2-3 words a second; Whisper's inventions on silence or music are a
    word or two ("you", "Thank you.") with a high no-speech probability. Only doubtful
    transcripts pay for a VAD pass, so ordinary speech runs at full speed.
    """
    words = len(transcript.text.split())
    sparse = words < 0.8 * max(transcript.duration, 1.0)
    return sparse or any(s.no_speech_prob > 0.5 for s in transcript.segments)


def without_invented_text(transcript: Transcript, audio: Audio) -> Transcript:
    """Drop segments that overlap no detected speech (all of them for silence or noise)."""
    speech = speech_spans(audio)
    kept = tuple(s for s in transcript.segments if any(_overlaps(s.start, s.end, span) for span in speech))
    renumbered = tuple(replace(segment, id=index) for index, segment in enumerate(kept))
    return replace(transcript, segments=renumbered)


def _overlaps(start: float, end: float, span: Span) -> bool:
    return start < span.end and span.start < end
