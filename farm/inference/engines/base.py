"""What every Whisper back end takes and returns.

The engine sees only 16 kHz mono float32 arrays and plain options; it knows nothing of
Celery, storage or settings files, so tests and benchmarks can drive it directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from farm.inference.signal import Audio
from farm.job.transcript import (
    Segment,
    Task,
    Timings,
    TranscribeOptions,
    Transcript,
    Word,
)

__all__ = [
    "Engine", "EngineConfig", "Progress", "ProgressCallback", "Segment",
    "Task", "Timings", "TranscribeOptions", "Transcript", "Word",
]  # fmt: skip


@dataclass(frozen=True)
class Progress:
    """How far an engine has got: the seconds of audio decoded so far, summed over the
    batch, and the segments decoded so far where the engine knows them (for the clip in
    progress; jobs call with one clip). CTranslate2 learns text once per decode pass, so
    the segments grow a window at a time, never a token at a time."""

    seconds: float
    segments: tuple[Segment, ...] = ()


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class EngineConfig:
    """How to build an engine: a resolved model location plus device placement."""

    model: str  # a local directory (or, for real deployments, a hub id)
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    compute_type: str = "default"  # int8, float16, int8_float16, float32, ...
    cpu_threads: int = 0  # 0: let the runtime choose
    num_workers: int = 1


class Engine(Protocol):
    """A loaded Whisper model that turns audio into transcripts."""

    name: str
    multilingual: bool  # False for English-only models such as tiny.en

    def transcribe(
        self,
        batch: Sequence[Audio],
        options: TranscribeOptions,
        on_progress: ProgressCallback | None = None,
    ) -> list[Transcript]:
        """Transcribe every array in ``batch``; the result keeps the input order."""
        ...

    def greedy_tokens(self, features: npt.NDArray[np.float32], prompt: Sequence[int]) -> list[list[int]]:
        """Greedy-decode log-mel ``features`` (batch, n_mels, 3000) after ``prompt`` tokens.

        Used to check that two engines given the same features agree token for token.
        """
        ...
