from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from farm.errors import ConfigError, ModelNotFoundError, UnknownLanguageError
from farm.inference.engines.base import EngineConfig, TranscribeOptions
from farm.inference.engines.transformers import TransformersEngine
from tests.engines.conftest import EVAL, JFK_PHRASE, decode, librispeech, normalise

GREEDY = TranscribeOptions(beam_size=1, temperatures=(0.0,))


def test_transcribes_jfk(tiny_en_engine: TransformersEngine, jfk: npt.NDArray[np.float32]) -> None:
    progress: list[float] = []
    [result] = tiny_en_engine.transcribe([jfk], TranscribeOptions(), progress.append)
    assert JFK_PHRASE in normalise(result.text)
    assert (result.language, result.language_probability, result.duration) == ("en", 1.0, 11.0)
    assert tiny_en_engine.name == "transformers" and tiny_en_engine.multilingual is False
    assert result.timings.decode_s > 0
    assert progress and progress[-1].seconds == pytest.approx(11.0)


def test_segments_are_ordered_within_the_audio(
    tiny_en_engine: TransformersEngine, jfk: npt.NDArray[np.float32]
) -> None:
    [result] = tiny_en_engine.transcribe([jfk], GREEDY)
    assert len(result.segments) >= 2  # tiny.en splits JFK at "for you"
    bounds = [t for segment in result.segments for t in (segment.start, segment.end)]
    assert bounds == sorted(bounds)
    assert bounds[0] >= 0.0 and bounds[-1] <= result.duration
    assert [segment.id for segment in result.segments] == list(range(len(result.segments)))


def test_word_timestamps_fall_inside_their_segments(
    tiny_en_engine: TransformersEngine, jfk: npt.NDArray[np.float32]
) -> None:
    [result] = tiny_en_engine.transcribe([jfk], TranscribeOptions(beam_size=1, word_timestamps=True))
    words = [word for segment in result.segments for word in segment.words]
    assert normalise(" ".join(w.word for w in words)) == normalise(result.text)
    for segment in result.segments:
        assert all(segment.start <= w.start <= w.end <= segment.end for w in segment.words)
    starts = [w.start for w in words]
    assert starts == sorted(starts)


def test_word_timestamps_leave_the_model_on_its_fast_attention(
    tiny_en_engine: TransformersEngine, jfk: npt.NDArray[np.float32]
) -> None:
    before = tiny_en_engine.model.config._attn_implementation
    tiny_en_engine.transcribe([jfk], TranscribeOptions(beam_size=1, word_timestamps=True))
    assert tiny_en_engine.model.config._attn_implementation == before


def test_batch_keeps_input_order(tiny_en_engine: TransformersEngine) -> None:
    clips = librispeech(3)
    results = tiny_en_engine.transcribe([decode(path) for path, _ in clips], GREEDY)
    references = [set(normalise(text).split()) for _, text in clips]
    for index, result in enumerate(results):
        heard = set(normalise(result.text).split())
        overlaps = [len(heard & reference) / len(reference) for reference in references]
        assert overlaps[index] > 0.5 and overlaps.index(max(overlaps)) == index, (result.text, clips[index][1])


def test_audio_longer_than_30_seconds(tiny_en_engine: TransformersEngine, jfk: npt.NDArray[np.float32]) -> None:
    long = decode(EVAL / "longform" / "ljspeech_LJ001-0001_to_0032.flac")[: 16000 * 40]
    long_result, short_result = tiny_en_engine.transcribe([long, jfk], GREEDY)
    assert long_result.duration == 40.0
    assert "printing" in normalise(long_result.text) and "netherlands" in normalise(long_result.text)
    assert long_result.segments[-1].end > 30.0
    assert long_result.segments[-1].end <= 40.0
    assert JFK_PHRASE in normalise(short_result.text)


def test_initial_prompt_is_accepted(tiny_en_engine: TransformersEngine, jfk: npt.NDArray[np.float32]) -> None:
    options = TranscribeOptions(beam_size=1, temperatures=(0.0,), initial_prompt="President Kennedy's speech.")
    [result] = tiny_en_engine.transcribe([jfk], options)
    assert JFK_PHRASE in normalise(result.text)
    assert "kennedy" not in normalise(result.text)  # the prompt conditions, it is not output


def test_empty_batch(tiny_en_engine: TransformersEngine) -> None:
    assert tiny_en_engine.transcribe([], GREEDY) == []


def test_english_only_model_rejects_other_languages(
    tiny_en_engine: TransformersEngine, jfk: npt.NDArray[np.float32]
) -> None:
    with pytest.raises(UnknownLanguageError):
        tiny_en_engine.transcribe([jfk], TranscribeOptions(language="de"))


def test_multilingual_base_detects_english(base_engine: TransformersEngine, jfk: npt.NDArray[np.float32]) -> None:
    [result] = base_engine.transcribe([jfk], GREEDY)
    assert base_engine.multilingual is True
    assert result.language == "en"
    assert 0.5 < result.language_probability <= 1.0
    assert JFK_PHRASE in normalise(result.text)


def test_multilingual_base_rejects_an_unknown_language(
    base_engine: TransformersEngine, jfk: npt.NDArray[np.float32]
) -> None:
    with pytest.raises(UnknownLanguageError):
        base_engine.transcribe([jfk], TranscribeOptions(language="xx"))


def test_bad_settings_fail_loudly(tiny_en_hf: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="compute_type"):
        TransformersEngine(EngineConfig(model=str(tiny_en_hf), compute_type="int4"))
    with pytest.raises(ModelNotFoundError):
        TransformersEngine(EngineConfig(model=str(tmp_path)))
