"""Packing clips from different jobs into shared windows, and handing words back."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from farm.inference import audio, packing
from farm.inference.batching import Batcher, BatchPolicy, _Request
from farm.inference.engines import load_engine
from farm.inference.engines.base import Engine, EngineConfig, ProgressCallback, TranscribeOptions
from farm.inference.engines.ctranslate2 import CTranslate2Engine
from farm.inference.signal import SAMPLE_RATE
from farm.inference.vad import Span
from farm.inference.weights.models import resolve_model
from farm.job.transcript import Segment, Transcript, Word
from tests.conftest import EVAL, JFK, JFK_PHRASE, librispeech_clips, normalise


def seconds(n: float) -> np.ndarray:
    return np.zeros(int(n * SAMPLE_RATE), dtype=np.float32)


def test_first_fit_decreasing_respects_the_window() -> None:
    clips = [seconds(s) for s in (20, 5, 12, 8, 3, 28, 1)]
    windows = packing.pack(clips, window_s=29.0, gap_s=0.5)
    placed = sorted(p.index for w in windows for p in w.placements)
    assert placed == list(range(len(clips)))
    for window in windows:
        assert len(window.audio) / SAMPLE_RATE <= 29.0 + 1e-6
        offsets = [p.offset for p in window.placements]
        assert offsets == sorted(offsets)
    assert len(windows) == 3  # 77 s of clips in three 29 s windows


def test_placements_point_at_the_right_samples() -> None:
    clips = [np.full(SAMPLE_RATE * 2, i + 1, dtype=np.float32) for i in range(3)]
    [window] = packing.pack(clips)
    assert sorted(p.index for p in window.placements) == [0, 1, 2]
    assert window.placements[0].offset == 0.0
    for placement in window.placements:
        start = int(placement.offset * SAMPLE_RATE)
        assert window.audio[start + 10] == placement.index + 1
    for placement in window.placements[1:]:
        assert window.audio[int(placement.offset * SAMPLE_RATE) - 10] == 0  # the gap before the clip


def _segment(*words: tuple[str, float, float], probability: float = 0.9) -> Segment:
    timed = tuple(Word(start, end, f" {text}", probability) for text, start, end in words)
    return Segment(0, timed[0].start, timed[-1].end, "".join(w.word for w in timed), words=timed)


def test_clips_run_together_or_skipped_are_doubtful() -> None:
    # Three 4 s clips at 0-4, 5-9 and 10-14 s (1 s gaps).
    [window] = packing.pack([seconds(4), seconds(4), seconds(4)], gap_s=1.0)
    assert [(p.offset, p.end) for p in window.placements] == [(0.0, 4.0), (5.0, 9.0), (10.0, 14.0)]

    def doubtful(*segments: Segment) -> set[int]:
        return packing.doubtful(window, Transcript(segments, "en", 1.0, 14.0))

    own = [_segment(("one", 0.5, 3.5)), _segment(("two", 5.5, 8.5)), _segment(("three", 10.5, 13.5))]
    assert doubtful(*own) == set()
    # The last word of clip 0 smeared into the gap still belongs to clip 0 alone.
    assert doubtful(_segment(("one", 0.5, 3.0), ("end", 3.5, 4.8)), *own[1:]) == set()
    # One segment across clips 0 and 1: both are doubtful; clip 2 is not.
    assert doubtful(_segment(("one", 0.5, 3.5), ("two", 5.5, 8.5)), own[2]) == {0, 1}
    # Clip 0 skipped (Whisper began at clip 1): no word of its own.
    assert doubtful(*own[1:]) == {0}
    # Whisper unsure of a clip's words (mean probability under 0.6); 0 means "not given".
    assert doubtful(own[0], _segment(("two", 5.5, 8.5), probability=0.4), own[2]) == {1}
    assert doubtful(own[0], _segment(("two", 5.5, 8.5), probability=0.0), own[2]) == set()
    # Without word times a segment counts where it starts and where it ends.
    assert doubtful(replace(own[0], words=()), replace(own[1], end=11.0, words=()), own[2]) == {1, 2}


def _spoken(duration: float, *words: tuple[float, float]) -> Transcript:
    """A clip's transcript whose words lie at the given times (one segment)."""
    timed = tuple(Word(start, end, " word", 0.9) for start, end in words)
    segments = (Segment(0, timed[0].start, timed[-1].end, " word" * len(timed), words=timed),) if timed else ()
    return Transcript(segments, "en", 1.0, duration)


def _every(step: float, start: float, end: float) -> list[tuple[float, float]]:
    """Words of ``step`` seconds back to back from ``start`` to ``end``."""
    count = round((end - start) / step)
    return [(start + i * step, start + (i + 1) * step) for i in range(count)]


def test_words_that_stop_before_the_speech_does_are_a_cut_clip() -> None:
    speech = [Span(0.3, 11.8)]
    whole = _spoken(12.0, *_every(0.4, 0.4, 11.6))
    assert not packing.may_be_cut(whole)  # words on every second: no VAD pass needed
    assert packing.covers(whole, speech)
    cut = _spoken(12.0, *_every(0.4, 0.4, 5.2))  # the text stops mid-phrase at 5.2 s
    assert packing.may_be_cut(cut) and not packing.covers(cut, speech)
    # The same words are whole when the speaker really stopped there (trailing silence).
    assert packing.covers(cut, [Span(0.3, 5.5)])
    # Under a second of speech left unheard is alignment noise, not a cut.
    assert packing.covers(cut, [Span(0.3, 6.3)]) and not packing.covers(cut, [Span(0.3, 6.7)])


def test_words_that_start_late_or_skip_a_stretch_are_a_cut_clip() -> None:
    late = _spoken(12.0, *_every(0.4, 4.0, 11.6))
    assert not packing.covers(late, [Span(0.3, 11.8)])
    assert packing.covers(late, [Span(3.7, 11.8)])  # silence before the speaker begins
    holed = _spoken(12.0, *_every(0.4, 0.4, 4.0), *_every(0.4, 6.4, 11.6))
    assert not packing.covers(holed, [Span(0.3, 11.8)])
    assert packing.covers(holed, [Span(0.3, 4.2), Span(6.2, 11.8)])  # a pause there
    # Two stretches of speech inside one word-less gap add up.
    assert not packing.covers(holed, [Span(0.3, 4.2), Span(4.6, 5.2), Span(5.4, 11.8)])


def test_too_few_words_for_the_speech_are_a_cut_clip() -> None:
    # Ten words whose times were spread over 12 s of speech: nothing unheard, too sparse.
    smeared = _spoken(12.0, *_every(1.15, 0.3, 11.8))
    assert packing.unheard(smeared) == []
    assert packing.may_be_cut(smeared) and not packing.covers(smeared, [Span(0.3, 11.8)])
    assert packing.covers(smeared, [Span(0.3, 9.0)])  # 10 words for 8.7 s of speech


def test_a_word_placed_late_by_alignment_is_no_cut() -> None:
    # From a real packed decode: "however," aligned as a zero-length word 1.2 s after
    # "When," while the speech ran on; the words still cover it within their padding.
    words = [(0.32, 1.08), (2.3, 2.3), *_every(0.4, 2.86, 17.66)]
    assert packing.covers(_spoken(18.06, *words), [Span(0.41, 5.45), Span(5.98, 17.8)])


def test_a_clip_without_words_or_word_times_is_judged_by_its_segments() -> None:
    assert not packing.covers(_spoken(3.0), [Span(0.2, 2.8)])  # skipped: no word at all
    segment = Segment(0, 0.3, 11.7, " " + "word " * 30)
    assert packing.covers(Transcript((segment,), "en", 1.0, 12.0), [Span(0.3, 11.8)])
    early = replace(segment, end=5.0)
    assert not packing.covers(Transcript((early,), "en", 1.0, 12.0), [Span(0.3, 11.8)])


def _said(text: str) -> Transcript:
    """A clip's transcript saying ``text``, one word every 0.4 s."""
    timed = [(word, i * 0.4, i * 0.4 + 0.3) for i, word in enumerate(text.split())]
    return Transcript((_segment(*timed),) if timed else (), "en", 1.0, 10.0)


def test_a_phrase_said_twice_back_to_back_is_a_loop() -> None:
    # Seen in a packed tiny.en decode during a 22-minute soak; gzip finds no loop in it.
    assert packing.repeats_a_phrase(_said("and then the gut-end the gut-end of the boat"))
    assert packing.repeats_a_phrase(_said("And then, and then he left."))  # case and punctuation aside
    assert packing.repeats_a_phrase(_said("he said it was over it was over and went home"))
    assert packing.repeated_phrase(_said("he said it was over, it was over")) == "it was over"


def test_a_word_said_twice_or_a_phrase_said_twice_apart_is_no_loop() -> None:
    assert not packing.repeats_a_phrase(_said("he said that that was all he had had"))
    assert not packing.repeats_a_phrase(_said("the end of the day and the end of the night"))
    assert not packing.repeats_a_phrase(_said("the gut-end of it, the gut"))
    assert not packing.repeats_a_phrase(_said(""))
    assert packing.repeated_phrase(_said("the end")) is None


@pytest.fixture(scope="module")
def engine() -> Engine:
    model = resolve_model("tiny.en", "ctranslate2", "/nonexistent")
    return load_engine("ctranslate2", EngineConfig(model=model, compute_type="int8", cpu_threads=2))


@pytest.fixture(scope="module")
def clips() -> list[tuple[np.ndarray, str]]:
    rows = librispeech_clips(12)[9:12]  # a different speaker each side of JFK
    pairs = [(audio.decode(EVAL / str(r["path"])), str(r["reference"])) for r in rows]
    return [pairs[0], (audio.decode(JFK), "and so my fellow americans " + JFK_PHRASE), *pairs[1:]]


def test_no_word_leaks_across_jobs(engine: Engine, clips: list[tuple[np.ndarray, str]]) -> None:
    windows = packing.pack([c for c, _ in clips])
    assert len(windows) < len(clips)  # something was actually shared
    options = TranscribeOptions(language="en", word_timestamps=True, condition_on_previous_text=False)
    texts: dict[int, str] = {}
    for window in windows:
        [whole] = engine.transcribe([window.audio], options)
        for index, piece in packing.split(window, whole).items():
            texts[index] = normalise(piece.text)
            assert all(0 <= s.start <= s.end <= piece.duration for s in piece.segments)
    assert JFK_PHRASE in texts[1]
    jfk_only = {"americans", "country", "fellow"}
    for index, (_, reference) in enumerate(clips):
        others = set().union(*(set(normalise(r).split()) for i, (_, r) in enumerate(clips) if i != index))
        own = set(normalise(reference).split())
        hypothesis = set(texts[index].split())
        assert len(hypothesis & own) >= 0.6 * len(own), (index, texts[index])
        leaked = (hypothesis - own) & (others - own)
        assert len(leaked) <= 1, (index, leaked)  # a homophone at most, never a phrase
        if index != 1:
            assert not hypothesis & jfk_only


class CountingEngine:
    """The real engine, counting the calls and windows the dispatcher makes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = engine.name
        self.multilingual = engine.multilingual
        self.windows: list[int] = []
        self.longest = 0  # samples in the longest window decoded

    def greedy_tokens(self, features: np.ndarray, prompt: Sequence[int]) -> list[list[int]]:
        return self.engine.greedy_tokens(features, prompt)

    def transcribe(
        self, batch: Sequence[np.ndarray], options: TranscribeOptions, on_progress: ProgressCallback | None = None
    ) -> list[Transcript]:
        self.windows.append(len(batch))
        self.longest = max(self.longest, *(len(audio) for audio in batch))
        return self.engine.transcribe(batch, options)

    def shared_a_window(self, clips: Sequence[np.ndarray]) -> bool:
        """Whether a window longer than every clip (so holding two or more) was decoded."""
        return self.longest > max(len(clip) for clip in clips)


class RoundsBatcher(Batcher):
    """The Batcher, recording how many requests each dispatch round gathered."""

    def __init__(self, engine: Engine, policy: BatchPolicy, multilingual: bool) -> None:
        self.rounds: list[int] = []  # before the dispatcher thread starts
        super().__init__(engine, policy, multilingual)

    def _gather(self) -> list[_Request]:
        batch = super()._gather()
        self.rounds.append(len(batch))
        return batch


@pytest.fixture()
def counting(engine: Engine) -> CountingEngine:
    return CountingEngine(engine)


@pytest.fixture()
def batcher(counting: CountingEngine) -> RoundsBatcher:
    # A dispatcher waits up to wait_s only while announced jobs are still on their way.
    return RoundsBatcher(counting, BatchPolicy(max_jobs=4, wait_s=5.0), multilingual=False)


def transcribe_together(packer: Batcher, clips: list[tuple[np.ndarray, str]]) -> dict[int, str]:
    """Every clip as its own job thread, all handed in within one dispatch round."""
    texts = _one_round(packer, [clip for clip, _ in clips], TranscribeOptions(language="en", beam_size=1))
    return {index: normalise(text) for index, text in enumerate(texts)}


def assert_own_words_only(results: dict[int, str], clips: list[tuple[np.ndarray, str]]) -> None:
    assert JFK_PHRASE in results[1]
    for index, (_, reference) in enumerate(clips):
        own = set(normalise(reference).split())
        assert len(set(results[index].split()) & own) >= 0.6 * len(own), results[index]
        if index != 1:
            assert not set(results[index].split()) & {"americans", "country", "fellow"}


def test_concurrent_jobs_get_their_own_transcripts(
    batcher: RoundsBatcher, counting: CountingEngine, clips: list[tuple[np.ndarray, str]]
) -> None:
    assert_own_words_only(transcribe_together(batcher, clips), clips)
    assert batcher.rounds[0] == len(clips) and counting.shared_a_window([clip for clip, _ in clips])


def test_a_failing_job_fails_alone_in_its_dispatch_round(batcher: RoundsBatcher) -> None:
    # Different options never share a window; in one round, the engine call that fails
    # fails its own job and the other job's call still runs.
    jfk = audio.decode(JFK)
    outcome: list[str | Exception] = ["", ""]
    options = [TranscribeOptions(language="en", beam_size=0), TranscribeOptions(language="en", beam_size=1)]
    ready = threading.Barrier(2)

    def run(index: int) -> None:
        with batcher.job():
            ready.wait()
            try:
                outcome[index] = normalise(batcher.transcribe(jfk, options[index], timeout=600).text)
            except ValueError as exc:
                outcome[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert batcher.rounds == [2]  # both in one round
    bad, good = outcome
    assert isinstance(bad, ValueError) and "beam size" in str(bad)
    assert JFK_PHRASE in str(good)


def test_the_same_words_in_two_jobs_are_not_a_decoding_loop(batcher: RoundsBatcher, counting: CountingEngine) -> None:
    # JFK twice in one window compresses like a loop (gzip ratio 2.5 > 2.4); judged per
    # job, each copy is fine and keeps greedy decoding.
    both = [audio.decode(EVAL / "whisper_cpp" / "jfk.mp3"), audio.decode(EVAL / "whisper_cpp" / "jfk.wav")]
    texts = [normalise(text) for text in _one_round(batcher, both, TranscribeOptions(language="en", beam_size=1))]
    assert counting.shared_a_window(both)  # the two copies really were decoded in one window
    assert all(JFK_PHRASE in text for text in texts), texts


def test_transformers_engine_packs_too(tiny_en_hf: Path, clips: list[tuple[np.ndarray, str]]) -> None:
    counting = CountingEngine(load_engine("transformers", EngineConfig(model=str(tiny_en_hf), cpu_threads=2)))
    packer = Batcher(counting, BatchPolicy(max_jobs=4, wait_s=5.0), multilingual=counting.multilingual)
    assert_own_words_only(transcribe_together(packer, clips), clips)
    assert counting.shared_a_window([clip for clip, _ in clips])


def test_copies_of_one_clip_in_a_round_are_decoded_once(engine: Engine, clips: list[tuple[np.ndarray, str]]) -> None:
    counting = CountingEngine(engine)
    packer = Batcher(counting, BatchPolicy(max_jobs=4, wait_s=0.5), multilingual=False)
    options = TranscribeOptions(language="en", beam_size=1)
    texts: list[str] = []

    def job(clip: np.ndarray) -> None:
        texts.append(normalise(packer.transcribe(clip, options, timeout=120).text))

    first = threading.Thread(target=job, args=(np.concatenate([clips[1][0]] * 2),))  # keeps the dispatcher busy
    first.start()
    while not counting.windows:
        time.sleep(0.01)
    copies = [threading.Thread(target=job, args=(clips[0][0].copy(),)) for _ in range(4)]
    for thread in copies:
        thread.start()
    for thread in [first, *copies]:
        thread.join()
    alone = normalise(engine.transcribe([clips[0][0]], options)[0].text)
    assert texts[1:] == [alone] * 4  # every copy gets the text the clip has on its own
    assert counting.windows == [1, 1]  # the busy job, then one decode for all four copies


def _one_round(packer: Batcher, clips: list[np.ndarray], options: TranscribeOptions) -> list[str]:
    """Every clip as its own job thread, all handed in within one dispatch round."""
    texts = [""] * len(clips)
    ready = threading.Barrier(len(clips))

    def job(index: int) -> None:
        with packer.job():  # counted as on its way, so the dispatcher waits for all of them
            ready.wait()
            texts[index] = packer.transcribe(clips[index], options, timeout=600).text

    threads = [threading.Thread(target=job, args=(i,)) for i in range(len(clips))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return texts


class PackedAlteringEngine(CountingEngine):
    """The real engine, whose packed windows' transcripts (word times asked for) a
    subclass alters; it records each call's kind and the first packed window's audio."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.calls: list[bool] = []  # word_timestamps of each call: True for packed windows
        self.first_window: np.ndarray | None = None

    def transcribe(
        self, batch: Sequence[np.ndarray], options: TranscribeOptions, on_progress: ProgressCallback | None = None
    ) -> list[Transcript]:
        self.calls.append(options.word_timestamps)
        transcripts = self.engine.transcribe(batch, options)
        if not options.word_timestamps:
            return transcripts
        first = self.first_window is None
        if first:
            self.first_window = batch[0]
        return self.altered(transcripts, first)

    def altered(self, transcripts: list[Transcript], first: bool) -> list[Transcript]:
        raise NotImplementedError


class CuttingEngine(PackedAlteringEngine):
    """The real engine, whose packed windows lose the words Whisper gave between 4.0 and
    10.5 s: the first clip's text stops mid-phrase, the way a packed tiny.en decode was
    seen to keep 15 of a clip's 38 words."""

    CUT = (4.0, 10.5)

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.cut_words = 0

    def altered(self, transcripts: list[Transcript], first: bool) -> list[Transcript]:
        return [self._cut(t) for t in transcripts]

    def _cut(self, transcript: Transcript) -> Transcript:
        kept = []
        for segment in transcript.segments:
            words = tuple(w for w in segment.words if not self.CUT[0] <= (w.start + w.end) / 2 < self.CUT[1])
            self.cut_words += len(segment.words) - len(words)
            if words:
                kept.append(replace(segment, words=words, text="".join(w.word for w in words)))
        return replace(transcript, segments=tuple(kept))


def test_a_packed_clip_whose_text_was_cut_is_run_alone_and_comes_back_whole(engine: Engine) -> None:
    # Two clips of other speakers, each over 10.5 s, packed into one window: whichever
    # comes first loses its words from 4 s on, with nothing else amiss in the window.
    rows = {str(r["path"]): r for r in librispeech_clips(50)}
    names = ("librispeech_test_other/2414-128291-0005.flac", "librispeech_test_other/2609-156975-0002.flac")
    clips = [audio.decode(EVAL / str(rows[name]["path"])) for name in names]
    assert all(len(c) / SAMPLE_RATE > CuttingEngine.CUT[1] for c in clips)
    cutting = CuttingEngine(engine)
    packer = Batcher(cutting, BatchPolicy(max_jobs=2, wait_s=5.0), multilingual=False)
    options = TranscribeOptions(language="en", beam_size=1)
    texts = _one_round(packer, clips, options)
    assert cutting.calls[0] is True and cutting.cut_words >= 5  # packed, and really cut
    assert cutting.first_window is not None
    [cut] = [i for i, clip in enumerate(clips) if np.array_equal(cutting.first_window[: len(clip)], clip)]
    alone = [engine.transcribe([clip], options)[0].text for clip in clips]
    assert texts[cut] == alone[cut]  # run again on its own: every word of its lone decode
    other = 1 - cut
    assert abs(len(texts[other].split()) - len(alone[other].split())) <= 2, (texts[other], alone[other])


def test_packed_jobs_keep_the_words_of_their_lone_decode(engine: Engine) -> None:
    # Eight clips of five speakers in one round, as a busy worker packs them: each job's
    # word count stays near that of the same clip decoded alone. Which clips share a
    # window depends on arrival order; over 6 orders no clip moved by more than 2 words,
    # while a cut clip loses most of its words (23 of 38 in the case that prompted this).
    rows = librispeech_clips(50)[3::6]
    clips = [audio.decode(EVAL / str(r["path"])) for r in rows]
    counting = CountingEngine(engine)
    packer = Batcher(counting, BatchPolicy(max_jobs=len(clips), wait_s=5.0), multilingual=False)
    options = TranscribeOptions(language="en", beam_size=1)
    packed = [len(normalise(text).split()) for text in _one_round(packer, clips, options)]
    alone = [len(normalise(engine.transcribe([clip], options)[0].text).split()) for clip in clips]
    assert len(counting.windows) < len(clips)  # windows were shared
    assert all(abs(p - a) <= max(3, 0.15 * a) for p, a in zip(packed, alone, strict=True)), (packed, alone)


def test_a_clip_decoded_in_one_pass_also_gets_the_speech_after_its_last_segment(engine: Engine) -> None:
    # tiny.en, beam 5: one pass over this 8.3 s clip closes a segment at "may be removed"
    # and stops; faster-whisper seeks there and decodes "entire without spinning its
    # contents". The job must end where faster-whisper's decode ends.
    clip = audio.decode(EVAL / "librispeech_test_other" / "1998-15444-0004.flac")
    options = TranscribeOptions(language="en", beam_size=5)
    packer = Batcher(engine, BatchPolicy(max_jobs=1), multilingual=False)
    text = normalise(packer.transcribe(clip, options, timeout=600).text)
    assert isinstance(engine, CTranslate2Engine)
    segments, _ = engine.model.transcribe(clip, language="en", beam_size=5)
    seeking = normalise("".join(segment.text for segment in segments))
    assert "contents" in seeking  # the words a single pass loses
    assert text.split()[-4:] == seeking.split()[-4:], (text, seeking)


class RepeatingEngine(PackedAlteringEngine):
    """The real engine, whose first packed window says its first two words twice (" the
    gut-end the gut-end"), a loop too short for the gzip check, the window otherwise intact."""

    def altered(self, transcripts: list[Transcript], first: bool) -> list[Transcript]:
        return [self._repeated(transcripts[0]), *transcripts[1:]] if first else transcripts

    @staticmethod
    def _repeated(transcript: Transcript) -> Transcript:
        first, *rest = transcript.segments
        again = tuple(replace(w, start=first.words[1].end, end=first.words[1].end) for w in first.words[:2])
        words = (*first.words[:2], *again, *first.words[2:])
        return replace(transcript, segments=(replace(first, words=words, text="".join(w.word for w in words)), *rest))


def test_a_packed_clip_that_says_a_phrase_twice_is_run_alone(engine: Engine) -> None:
    rows = {str(r["path"]): r for r in librispeech_clips(50)}
    names = ("librispeech_test_other/2414-128291-0005.flac", "librispeech_test_other/2609-156975-0002.flac")
    clips = [audio.decode(EVAL / str(rows[name]["path"])) for name in names]
    repeating = RepeatingEngine(engine)
    packer = Batcher(repeating, BatchPolicy(max_jobs=2, wait_s=5.0), multilingual=False)
    options = TranscribeOptions(language="en", beam_size=1)
    texts = _one_round(packer, clips, options)
    assert repeating.calls[0] is True and repeating.first_window is not None  # packed
    [first] = [i for i, clip in enumerate(clips) if np.array_equal(repeating.first_window[: len(clip)], clip)]
    alone = [engine.transcribe([clip], options)[0].text for clip in clips]
    assert not packing.repeats_a_phrase(_said(alone[first]))  # the loop was the packed decode's alone
    assert texts[first] == alone[first]  # run again on its own: its lone decode, said once
