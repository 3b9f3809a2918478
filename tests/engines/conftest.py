"""Loaded engines and real speech for the engine tests, built once per test session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from farm.inference import audio
from farm.inference.engines.base import EngineConfig
from farm.inference.engines.transformers import TransformersEngine
from tests.conftest import EVAL, JFK, JFK_PHRASE, librispeech_clips, normalise

__all__ = ["EVAL", "JFK_PHRASE", "decode", "librispeech", "normalise"]


def decode(path: Path) -> npt.NDArray[np.float32]:
    return audio.decode(path)


def librispeech(count: int) -> list[tuple[Path, str]]:
    """The first ``count`` LibriSpeech test-other clips with their reference text."""
    return [(EVAL / str(row["path"]), str(row["reference"])) for row in librispeech_clips(count)]


@pytest.fixture(scope="session")
def tiny_en_engine(tiny_en_hf: Path) -> TransformersEngine:
    return TransformersEngine(EngineConfig(model=str(tiny_en_hf)))


@pytest.fixture(scope="session")
def base_engine(base_hf: Path) -> TransformersEngine:
    return TransformersEngine(EngineConfig(model=str(base_hf)))


@pytest.fixture(scope="session")
def jfk() -> npt.NDArray[np.float32]:
    return decode(JFK)
