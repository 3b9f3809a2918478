"""Batched decoding of 30 s windows on CTranslate2: one encoder call for the whole batch.

faster-whisper's ``WhisperModel.transcribe`` takes one clip at a time; its
``BatchedInferencePipeline`` encodes many windows at once and decodes them together, but
shares one word-timing state across the batch (a window's words then depend on its
neighbours) and skips temperature fallback. This module drives the same CTranslate2
calls the pipeline does (``encode``, ``detect_language``, ``generate`` with a prompt per
window, ``align``) and keeps, per window, what ``WhisperModel.transcribe`` does for a
clip of up to 30 s: temperature fallback, the no-speech skip, word timings that start
afresh for each window, and the seek: when a decode closes a segment before the end of
the audio, the window is decoded again from that segment's end, with the text so far as
the prompt. Each pass takes every window still short of its end through one encode and
one generate. So a window's tokens do not depend on the batch it rides in.
The decode of one pass, with its temperature fallback, is ``ct2_fallback``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import WhisperModel
from faster_whisper.utils import get_end

from farm.errors import UnknownLanguageError
from farm.inference.engines.base import Segment, TranscribeOptions, Word
from farm.inference.engines.ct2_fallback import Decoded, Fallback, Prompted, encoder_rows, skipped
from farm.inference.engines.features import N_FRAMES, log_mel_frames, pad_or_trim
from farm.inference.signal import SAMPLE_RATE, Audio

WINDOW_SAMPLES = 30 * SAMPLE_RATE  # what one encoder window holds
FRAMES_PER_SECOND = 100  # mel frames (10 ms hops)
_SECONDS_PER_FRAME = 160 / SAMPLE_RATE  # as faster-whisper computes its time offsets
_PROMPT_RESET_ON_TEMPERATURE = 0.5
_PREPEND = "\"'“¿([{-"
_APPEND = "\"'.。,，!！?？:：”)]}、"

# After each pass, per window decoded in it: (its index in the batch, seconds of it
# decoded so far, all its segments so far).
PassCallback = Callable[[int, float, tuple[Segment, ...]], None]


@dataclass(frozen=True)
class WindowResult:
    """One window's decoded segments and language."""

    segments: tuple[Segment, ...]
    language: str
    language_probability: float


@dataclass
class _Window:
    mel: npt.NDArray[np.float32]  # the clip's log-mel, cut to its content frames
    language: str = "en"
    language_probability: float = 1.0
    seek: int = 0  # frames decoded so far
    decoded: Decoded | None = None  # this pass's decode
    history: list[int] = field(default_factory=list)  # faster-whisper's all_tokens
    reset_since: int = 0  # faster-whisper's prompt_reset_since
    last_speech: float = 0.0  # faster-whisper's last_speech_timestamp
    kept: list[dict[str, Any]] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return int(self.mel.shape[-1])

    @property
    def done(self) -> bool:
        return self.seek >= self.frames

    def features(self) -> npt.NDArray[np.float32]:
        return pad_or_trim(self.mel[:, self.seek :])

    def segments(self) -> tuple[Segment, ...]:
        return tuple(_segment(i, raw) for i, raw in enumerate(self.kept))


@dataclass
class _Split:
    """One window's decode in one pass, cut into segments at its timestamps."""

    segments: list[dict[str, Any]]
    seek: int  # where the next pass starts
    single_ending: bool  # the decode ends on one timestamp: no speech after it


def fits_one_window(audio: Audio) -> bool:
    return bool(len(audio) <= WINDOW_SAMPLES)


def decode_windows(
    model: WhisperModel, batch: Sequence[Audio], options: TranscribeOptions, on_pass: PassCallback | None = None
) -> list[WindowResult]:
    """Transcribe clips of up to 30 s each, the whole batch through each model call.

    ``on_pass`` hears of each window's progress after every pass (see ``PassCallback``).
    """
    n_mels = int(model.model.n_mels)
    # as faster-whisper: the mel's last frame (past the audio) is cut before the padding
    windows = [_Window(_content(log_mel_frames(audio, n_mels))) for audio in batch]
    _Passes(model, windows, options, on_pass).run()
    return [WindowResult(w.segments(), w.language, w.language_probability) for w in windows]


def _content(mel: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return mel[:, : min(mel.shape[-1] - 1, N_FRAMES)]


class _Passes:
    """faster-whisper's seek loop, run for the batch: the first pass decodes every window,
    each later one the windows whose decode stopped at a closed segment before their end."""

    def __init__(
        self, model: WhisperModel, windows: list[_Window], options: TranscribeOptions, on_pass: PassCallback | None
    ) -> None:
        self.model, self.windows, self.options, self.on_pass = model, windows, options, on_pass
        self.tokenizers: dict[str, Tokenizer] = {}

    def run(self) -> None:
        pending = list(range(len(self.windows)))
        while pending:
            self._pass(pending)
            pending = [i for i in pending if not self.windows[i].done]

    def _pass(self, indexes: list[int]) -> None:
        windows = [self.windows[i] for i in indexes]
        features = np.stack([w.features() for w in windows])
        encoded = self.model.encode(features)
        if not self.tokenizers:
            self._start(encoded)
        prompted = [Prompted(w.language, self._prompt(w)) for w in windows]
        decodes = Fallback(self.model, features, prompted, self.tokenizers, self.options).run(encoded)
        for window, decoded in zip(windows, decodes, strict=True):
            window.decoded = decoded
        splits = [self._split(w) for w in windows]
        if self.options.word_timestamps:
            _add_words(self.model, features, encoded, windows, splits, self.tokenizers)
        for index, window, split in zip(indexes, windows, splits, strict=True):
            self._keep(window, split)
            if self.on_pass is not None:
                self.on_pass(index, min(window.seek, window.frames) / FRAMES_PER_SECOND, window.segments())

    def _start(self, encoded: Any) -> None:
        """The first pass: each window's language, and the initial prompt as its history."""
        _set_languages(self.model, encoded, self.windows, self.options.language)
        self.tokenizers = {w.language: _tokenizer(self.model, self.options, w.language) for w in self.windows}
        if self.options.initial_prompt:
            for window in self.windows:
                window.history = self.tokenizers[window.language].encode(" " + self.options.initial_prompt.strip())

    def _prompt(self, window: _Window) -> list[int]:
        previous = window.history[window.reset_since :]
        return list(self.model.get_prompt(self.tokenizers[window.language], previous_tokens=previous))

    def _split(self, window: _Window) -> _Split:
        decoded = window.decoded
        if decoded is None or skipped(decoded, self.options):
            return _Split([], window.frames, True)  # a silent window: faster-whisper skips to its end
        size = window.frames - window.seek
        found, seek, single_ending = self.model._split_segments_by_timestamps(
            tokenizer=self.tokenizers[window.language],
            tokens=decoded.tokens,
            time_offset=window.seek * _SECONDS_PER_FRAME,
            segment_size=size,
            segment_duration=size * _SECONDS_PER_FRAME,
            seek=window.seek,
        )
        return _Split(found, seek, single_ending)

    def _keep(self, window: _Window, split: _Split) -> None:
        decoded, tokenizer = window.decoded, self.tokenizers[window.language]
        for segment in split.segments:
            text = tokenizer.decode(segment["tokens"])
            if segment["start"] != segment["end"] and text.strip():
                window.kept.append({**segment, **_within(segment, window), "text": text, "decoded": decoded})
                window.history.extend(segment["tokens"])
        if decoded is not None and self._resets(decoded):
            window.reset_since = len(window.history)
        # a seek that does not move on would decode the same audio again: the window ends
        window.seek = split.seek if split.seek > window.seek else window.frames

    def _resets(self, decoded: Decoded) -> bool:
        return not self.options.condition_on_previous_text or decoded.temperature > _PROMPT_RESET_ON_TEMPERATURE


def _set_languages(model: WhisperModel, encoded: Any, windows: list[_Window], requested: str | None) -> None:
    if not model.model.is_multilingual:
        return  # as faster-whisper: an English-only model transcribes English whatever is asked
    if requested is not None:
        if requested not in model.supported_languages:
            raise UnknownLanguageError(f"language {requested!r} is not one this model knows")
        for window in windows:
            window.language = requested
        return
    for window, ranked in zip(windows, model.model.detect_language(encoded), strict=True):
        token, probability = ranked[0]
        window.language, window.language_probability = token[2:-2], float(probability)


def _tokenizer(model: WhisperModel, options: TranscribeOptions, language: str) -> Tokenizer:
    return Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task=options.task, language=language)


def _within(segment: dict[str, Any], window: _Window) -> dict[str, float]:
    """The segment's times cut to the audio: a timestamp the model reads off the padding
    (after a seek, the 30 s it sees run past the clip) would end a segment after the clip."""
    end = window.frames * _SECONDS_PER_FRAME
    return {"start": min(float(segment["start"]), end), "end": min(float(segment["end"]), end)}


def _add_words(
    model: WhisperModel,
    features: npt.NDArray[np.float32],
    encoded: Any,
    windows: list[_Window],
    splits: list[_Split],
    tokenizers: dict[str, Tokenizer],
) -> None:
    """Word timings for one pass: one ``align`` call per language in it, then faster-whisper's
    own clean-up run for each window on its own (its state is per clip)."""
    for language, tokenizer in tokenizers.items():
        indexes = [i for i, w in enumerate(windows) if w.language == language]
        if not indexes:
            continue
        inputs = encoder_rows(model, encoded, features, indexes)
        text = [[t for s in splits[i].segments for t in s["tokens"] if t < tokenizer.eot] for i in indexes]
        frames = [windows[i].frames - windows[i].seek for i in indexes]
        alignments = model.find_alignment(tokenizer, text, inputs, frames)
        for index, alignment in zip(indexes, alignments, strict=True):
            _time_words(windows[index], splits[index], _Aligned(alignment, model.frames_per_second), tokenizer)


def _time_words(window: _Window, split: _Split, aligned: _Aligned, tokenizer: Tokenizer) -> None:
    """faster-whisper's per-pass word clean-up, and its seek to the last word's end."""
    if not split.segments:
        return
    size = window.frames - window.seek
    WhisperModel.add_word_timestamps(
        aligned, [split.segments], tokenizer, None, [size], _PREPEND, _APPEND, window.last_speech
    )
    last_word_end = get_end(split.segments)
    if last_word_end is None:
        return
    if not split.single_ending and last_word_end > window.seek * _SECONDS_PER_FRAME:
        split.seek = round(last_word_end * FRAMES_PER_SECOND)
    window.last_speech = last_word_end


class _Aligned:
    """Stands in for ``WhisperModel`` inside ``add_word_timestamps``: the alignment is
    already computed (for the whole batch), the clean-up is run for one window."""

    def __init__(self, alignment: list[dict[str, Any]], frames_per_second: float) -> None:
        self.alignment = alignment
        self.frames_per_second = frames_per_second

    def find_alignment(self, *_args: Any) -> list[list[dict[str, Any]]]:
        return [self.alignment]


def _segment(index: int, raw: dict[str, Any]) -> Segment:
    decoded: Decoded = raw["decoded"]
    return Segment(
        id=index,
        start=round(float(raw["start"]), 3),
        end=round(float(raw["end"]), 3),
        text=raw["text"],
        avg_logprob=decoded.avg_logprob,
        no_speech_prob=decoded.no_speech_prob,
        compression_ratio=decoded.compression_ratio,
        temperature=decoded.temperature,
        words=tuple(
            Word(float(w["start"]), float(w["end"]), w["word"], float(w["probability"])) for w in raw.get("words", ())
        ),
    )
