"""Our log-mel is faster-whisper's, number for number, without importing faster-whisper.

The transformers engine must run where only torch and transformers are installed (the
air-gapped GPU host of bench/gpu_check.py), and both engines must still see the very
same features (tests/engines/test_equivalence.py).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor

from farm.inference.engines.features import log_mel_frames
from tests.conftest import JFK, ROOT
from tests.engines.conftest import decode, librispeech


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_equals_faster_whispers(n_mels: int) -> None:
    for path in (JFK, librispeech(1)[0][0]):
        audio = decode(path)
        assert np.array_equal(log_mel_frames(audio, n_mels), FeatureExtractor(feature_size=n_mels)(audio))


def test_the_transformers_engine_needs_neither_faster_whisper_nor_ctranslate2() -> None:
    code = (
        "import sys, farm.inference.engines.transformers, farm.inference.engines.synthetic; "
        "print(sorted({'faster_whisper', 'ctranslate2', 'av'} & {m.split('.')[0] for m in sys.modules}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
