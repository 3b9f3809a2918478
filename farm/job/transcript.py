"""What a transcription is: options in, segments out. Plain dataclasses, no numpy,
so producers (which install no numeric stack) share them with workers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class TranscribeOptions:
    """Decoding options shared by every engine (the defaults follow OpenAI's Whisper)."""

    language: str | None = None  # None: detect it from the first 30 s
    task: Task = "transcribe"
    beam_size: int = 5
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    initial_prompt: str | None = None
    word_timestamps: bool = False
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    condition_on_previous_text: bool = True
    vad_filter: bool = False


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """One decoded stretch of speech; times are seconds from the start of the input."""

    id: int
    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Timings:
    """Wall seconds spent inside the engine for one input (batched inputs share a call)."""

    decode_s: float


@dataclass(frozen=True)
class Transcript:
    segments: tuple[Segment, ...]
    language: str
    language_probability: float
    duration: float
    timings: Timings = field(default_factory=lambda: Timings(0.0))

    @property
    def text(self) -> str:
        return joined_text(self.segments)


def joined_text(segments: Sequence[Segment]) -> str:
    """The text of ``segments`` as a transcript says it; a prefix of segments gives a prefix of it."""
    return "".join(segment.text for segment in segments).strip()
