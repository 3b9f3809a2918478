"""A window is decoded to its end: Whisper's seek inside one 30 s window.

Whisper often closes a segment before the end of the audio and stops; faster-whisper's
``WhisperModel.transcribe`` then seeks to the last timestamp and decodes the rest again.
``decode_windows`` does the same, batched: these tests hold it to faster-whisper's text.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from farm.inference.engines.base import EngineConfig, Progress, Segment, TranscribeOptions
from farm.inference.engines.ct2_windows import decode_windows
from farm.inference.engines.ctranslate2 import CTranslate2Engine
from tests.conftest import EVAL, librispeech_clips, normalise, tiny_en_ct2
from tests.engines.conftest import decode

OPTIONS = TranscribeOptions(language="en", beam_size=5)
# tiny.en, beam 5: one pass over each of these stops at a closed segment before the end
CUT_SHORT = {
    "1998-15444-0004": "entire without spinning its contents",
    "1998-15444-0009": "an aquatic poisoning",
    "2033-164914-0008": "go to the",
}
# those three, one more that a single pass got wrong, and eleven more of 6-13 s
CLIPS = (1, 6, 10, 12, 14, 15, 16, 19, 20, 28, 31, 34, 35, 42, 46)


@pytest.fixture(scope="module")
def ct2_engine() -> CTranslate2Engine:
    return CTranslate2Engine(EngineConfig(model=str(tiny_en_ct2()), compute_type="int8", cpu_threads=2))


def clip(name: str) -> npt.NDArray[np.float32]:
    return decode(EVAL / "librispeech_test_other" / f"{name}.flac")


def faster_whisper_text(engine: CTranslate2Engine, audio: npt.NDArray[np.float32]) -> str:
    segments, _ = engine.model.transcribe(audio, language="en", beam_size=5)
    return normalise("".join(segment.text for segment in segments))


@pytest.mark.parametrize("name", sorted(CUT_SHORT))
def test_a_window_decoded_alone_keeps_its_last_words(ct2_engine: CTranslate2Engine, name: str) -> None:
    audio = clip(name)
    [window] = decode_windows(ct2_engine.model, [audio], OPTIONS)
    text = normalise("".join(segment.text for segment in window.segments))
    assert text.endswith(CUT_SHORT[name]), text
    assert text == faster_whisper_text(ct2_engine, audio)
    ends = [segment.end for segment in window.segments]
    assert ends == sorted(ends) and ends[-1] <= len(audio) / 16000 + 0.02


def test_word_times_after_a_seek_are_faster_whispers(ct2_engine: CTranslate2Engine) -> None:
    # each pass aligns its own words, carrying the last word's end as faster-whisper does
    audio = clip("1998-15444-0004")
    [window] = decode_windows(ct2_engine.model, [audio], replace(OPTIONS, word_timestamps=True))
    segments, _ = ct2_engine.model.transcribe(audio, language="en", beam_size=5, word_timestamps=True)
    theirs = [(w.word, w.start, w.end) for s in segments for w in s.words or ()]
    ours = [(w.word, w.start, w.end) for s in window.segments for w in s.words]
    assert [w for w, _, _ in ours] == [w for w, _, _ in theirs] and len(window.segments) >= 2
    assert np.abs(np.array([t for _, *t in ours]) - np.array([t for _, *t in theirs])).max() <= 0.021


def test_each_pass_is_reported(ct2_engine: CTranslate2Engine) -> None:
    audio = clip("1998-15444-0004")
    passes: list[tuple[int, float, tuple[Segment, ...]]] = []
    [window] = decode_windows(ct2_engine.model, [audio], OPTIONS, on_pass=lambda *report: passes.append(report))
    assert len(passes) >= 2  # the first pass stops short, the seek decodes the rest
    assert all(index == 0 for index, _, _ in passes)
    decoded = [seconds for _, seconds, _ in passes]
    assert decoded == sorted(decoded) and decoded[0] < len(audio) / 16000 <= decoded[-1] + 0.02
    assert passes[-1][2] == window.segments


def test_a_lone_clip_reports_each_pass_as_progress(ct2_engine: CTranslate2Engine) -> None:
    progress: list[Progress] = []
    [result] = ct2_engine.transcribe([clip("1998-15444-0004")], OPTIONS, progress.append)
    passes = progress[:-1]  # the last report is the batch's, once it is done
    assert len(passes) >= 2 and passes[0].seconds < passes[-1].seconds
    assert len(passes[0].segments) < len(result.segments) and passes[-1].segments == result.segments


def test_the_engine_agrees_with_faster_whisper(ct2_engine: CTranslate2Engine) -> None:
    rows = [librispeech_clips(50)[i] for i in CLIPS]
    assert {Path(str(r["path"])).stem for r in rows} >= set(CUT_SHORT)
    audios = [decode(EVAL / str(row["path"])) for row in rows]
    started = time.perf_counter()
    ours = [normalise(t.text) for t in ct2_engine.transcribe(audios, OPTIONS)]
    print(f"engine: {time.perf_counter() - started:.1f} s for {len(audios)} clips in one batch")
    theirs = [faster_whisper_text(ct2_engine, audio) for audio in audios]
    differ = [(row["path"], a, b) for row, a, b in zip(rows, ours, theirs, strict=True) if a != b]
    print(f"{len(rows) - len(differ)} of {len(rows)} clips as faster-whisper")
    assert len(differ) <= 1, differ
