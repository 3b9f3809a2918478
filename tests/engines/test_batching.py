"""Batches are real: one encoder call for a batch, and a window's tokens do not depend on it.

A window decoded alone (batch 1) and inside a batch of N must give the same text, segment
times and word times (greedy, beam 1). Each engine is checked on real speech: LibriSpeech
clips and JFK, each under 30 s (one encoder window).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from farm.inference.batching import Batcher, BatchPolicy
from farm.inference.engines.base import Engine, EngineConfig, TranscribeOptions, Transcript
from farm.inference.engines.ctranslate2 import CTranslate2Engine
from farm.inference.engines.transformers import TransformersEngine
from tests.conftest import JFK, tiny_en_ct2
from tests.engines.conftest import decode, librispeech

GREEDY = TranscribeOptions(beam_size=1, temperatures=(0.0,), word_timestamps=True)
Audio = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def ct2_engine() -> CTranslate2Engine:
    return CTranslate2Engine(EngineConfig(model=str(tiny_en_ct2()), compute_type="int8", cpu_threads=2))


@pytest.fixture(scope="module")
def windows() -> list[Audio]:
    return [decode(JFK), *(decode(path) for path, _ in librispeech(7))]


def decoded(transcript: Transcript) -> list[Any]:
    """What the tokens say: each segment's text and timestamp tokens, and its words."""
    return [(s.text, s.start, s.end, [w.word for w in s.words]) for s in transcript.segments]


def word_times(transcript: Transcript) -> npt.NDArray[np.float64]:
    return np.array([(w.start, w.end) for s in transcript.segments for w in s.words])


def assert_batch_invariant(engine: Engine, windows: list[Audio]) -> None:
    together = engine.transcribe(windows, GREEDY)
    alone = [engine.transcribe([window], GREEDY)[0] for window in windows]
    assert all(t.text for t in together)
    for index, (batched, single) in enumerate(zip(together, alone, strict=True)):
        assert decoded(batched) == decoded(single), f"window {index} changed with its batch"
        assert batched.language == single.language
        # Word times come from cross-attention (DTW over attention weights): float noise
        # between batch shapes may move a boundary by a frame (20 ms), never more.
        assert np.abs(word_times(batched) - word_times(single)).max() <= 0.021, f"window {index}"


def test_ctranslate2_window_does_not_depend_on_its_batch(ct2_engine: CTranslate2Engine, windows: list[Audio]) -> None:
    assert_batch_invariant(ct2_engine, windows)


def test_transformers_window_does_not_depend_on_its_batch(
    tiny_en_engine: TransformersEngine, windows: list[Audio], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    generate = tiny_en_engine.model.generate

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(int(args[0].shape[0]))  # the batch of input features
        return generate(*args, **kwargs)

    monkeypatch.setattr(tiny_en_engine.model, "generate", counted)
    assert_batch_invariant(tiny_en_engine, windows[:4])
    assert calls == [4, 1, 1, 1, 1]  # one generate for the batch (word timings too), then each alone


class CountingWhisper:
    """The real CTranslate2 model, with its encoder runs counted (every other call passes through)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.encoded: list[int] = []  # batch size of each encoder call

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        self.encoded.append(int(features.shape[0]))
        return self.model.encode(features, to_cpu=to_cpu)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


@pytest.fixture
def counting(ct2_engine: CTranslate2Engine) -> Iterator[CountingWhisper]:
    real = ct2_engine.model.model
    counter = CountingWhisper(real)
    ct2_engine.model.model = counter
    try:
        yield counter
    finally:
        ct2_engine.model.model = real


def test_ctranslate2_encodes_a_batch_in_one_call(
    ct2_engine: CTranslate2Engine, counting: CountingWhisper, windows: list[Audio]
) -> None:
    results = ct2_engine.transcribe(windows, GREEDY)
    # one encoder call per pass: all 8 windows, then only those that seek past a closed
    # segment (word timings and language reuse each pass's encoding)
    assert counting.encoded[0] == 8 and all(n < 8 for n in counting.encoded[1:])
    assert len(results) == 8 and all(r.segments[0].words for r in results)


def test_batcher_with_batch_size_8_makes_one_encoder_call_for_8_jobs(
    ct2_engine: CTranslate2Engine, counting: CountingWhisper, windows: list[Audio]
) -> None:
    # No packing: each job's clip is a window of its own, and the 8 ride in one call.
    policy = BatchPolicy(max_jobs=8, batch_size=8, wait_s=600.0, pack=False)
    batcher = Batcher(ct2_engine, policy, multilingual=False)
    everyone_in = threading.Barrier(len(windows))
    results: dict[int, Transcript] = {}

    def job(index: int) -> None:
        with batcher.job():
            everyone_in.wait()  # all 8 jobs are announced before the first reaches the batcher
            results[index] = batcher.transcribe(windows[index], GREEDY)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(len(windows))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counting.encoded[0] == 8 and all(n < 8 for n in counting.encoded[1:])
    alone = ct2_engine.transcribe(windows, GREEDY)
    assert [decoded(results[i]) for i in range(len(windows))] == [decoded(t) for t in alone]


def test_long_clips_still_go_through_the_sequential_loop(
    ct2_engine: CTranslate2Engine, counting: CountingWhisper, windows: list[Audio]
) -> None:
    long = np.concatenate([windows[0], windows[1], windows[2]])  # over 30 s
    short, whole = ct2_engine.transcribe([windows[0], long], GREEDY)
    assert whole.duration > 30 and whole.segments[-1].end > 30
    assert short.text and counting.encoded[0] == 1  # the short one was a batch of its own
