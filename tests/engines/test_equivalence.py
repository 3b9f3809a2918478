"""Given identical log-mel features, both engines pick identical tokens.

The transformers model is converted from the very CTranslate2 weights faster-whisper
runs, and CTranslate2 runs them in float32 here, so greedy decoding should agree token
for token; a difference points at the conversion or at the feature path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from farm.inference.engines.base import EngineConfig
from farm.inference.engines.ctranslate2 import CTranslate2Engine
from farm.inference.engines.features import log_mel
from farm.inference.engines.transformers import TransformersEngine
from tests.conftest import JFK, tiny_en_ct2
from tests.engines.conftest import decode, librispeech

SOT, NO_TIMESTAMPS = 50257, 50362  # tiny.en's <|startoftranscript|>, <|notimestamps|>


@pytest.fixture(scope="module")
def ct2_engine() -> CTranslate2Engine:
    return CTranslate2Engine(EngineConfig(model=str(tiny_en_ct2()), compute_type="float32"))


@pytest.fixture(scope="module")
def features() -> npt.NDArray[np.float32]:
    paths: list[Path] = [JFK, *(path for path, _ in librispeech(3))]
    return np.stack([log_mel(decode(path)) for path in paths])


def test_features_are_one_encoder_window(features: npt.NDArray[np.float32]) -> None:
    assert features.shape == (4, 80, 3000) and features.dtype == np.float32
    # JFK is 11 s: the mel past 1101 frames is the zero padding faster-whisper adds
    assert not features[0, :, 1110:].any() and features[0, :, :1000].any()


@pytest.mark.parametrize("prompt", [[SOT, NO_TIMESTAMPS], [SOT]], ids=["no-timestamps", "timestamps"])
def test_greedy_tokens_match_ctranslate2(
    tiny_en_engine: TransformersEngine,
    ct2_engine: CTranslate2Engine,
    features: npt.NDArray[np.float32],
    prompt: list[int],
) -> None:
    ours = tiny_en_engine.greedy_tokens(features, prompt)
    theirs = ct2_engine.greedy_tokens(features, prompt)
    assert all(len(tokens) > 10 for tokens in ours)
    assert ours == theirs
