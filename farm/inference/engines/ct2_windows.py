"""Batched decoding of 30 s windows on CTranslate2: one encoder call for the whole batch.

faster-whisper's ``WhisperModel.transcribe`` takes one clip at a time; its
``BatchedInferencePipeline`` encodes many windows at once and decodes them together, but
shares one word-timing state across the batch (a window's words then depend on its
neighbours) and skips temperature fallback. This module drives the same CTranslate2
calls the pipeline does (``encode``, ``detect_language``, ``generate`` with a prompt per
window, ``align``) and keeps, per window, what ``WhisperModel.transcribe`` does for a
clip of up to 30 s: temperature fallback, the no-speech skip and word timings that start
afresh for each window. So a window's tokens do not depend on the batch it rides in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import WhisperModel, get_compression_ratio, get_suppressed_tokens

from farm.errors import UnknownLanguageError
from farm.inference.engines.base import Segment, TranscribeOptions, Word
from farm.inference.engines.features import N_FRAMES, log_mel_frames, pad_or_trim
from farm.inference.signal import SAMPLE_RATE, Audio

WINDOW_SAMPLES = 30 * SAMPLE_RATE  # what one encoder window holds
_BEST_OF = 5  # faster-whisper's defaults for what TranscribeOptions does not carry
_MAX_INITIAL_TIMESTAMP_INDEX = 50  # 1.0 s in 0.02 s steps
_PREPEND = "\"'“¿([{-"
_APPEND = "\"'.。,，!！?？:：”)]}、"


@dataclass(frozen=True)
class WindowResult:
    """One window's decoded segments and language."""

    segments: tuple[Segment, ...]
    language: str
    language_probability: float


@dataclass
class _Window:
    frames: int  # mel frames of real audio (faster-whisper's content_frames)
    language: str = "en"
    language_probability: float = 1.0
    decoded: _Decoded | None = None

    @property
    def duration(self) -> float:
        return self.frames / 100


@dataclass(frozen=True)
class _Decoded:
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float


def fits_one_window(audio: Audio) -> bool:
    return bool(len(audio) <= WINDOW_SAMPLES)


def decode_windows(model: WhisperModel, batch: Sequence[Audio], options: TranscribeOptions) -> list[WindowResult]:
    """Transcribe clips of up to 30 s each, the whole batch through each model call."""
    n_mels = int(model.model.n_mels)
    mels = [log_mel_frames(audio, n_mels) for audio in batch]
    windows = [_Window(frames=min(mel.shape[-1] - 1, N_FRAMES)) for mel in mels]
    # as faster-whisper: the mel's last frame (past the audio) is cut before the padding
    features = np.stack([pad_or_trim(mel[:, : w.frames]) for mel, w in zip(mels, windows, strict=True)])
    encoded = model.encode(features)
    _set_languages(model, encoded, windows, options.language)
    tokenizers = {w.language: _tokenizer(model, options, w.language) for w in windows}
    _Fallback(model, features, windows, tokenizers, options).run(encoded)
    segments = [_segments(model, tokenizers[w.language], w, options) for w in windows]
    if options.word_timestamps:
        _add_words(model, features, encoded, windows, segments, tokenizers)
    return [
        WindowResult(tuple(_segment(i, s) for i, s in enumerate(found)), w.language, w.language_probability)
        for w, found in zip(windows, segments, strict=True)
    ]


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


class _Fallback:
    """faster-whisper's temperature fallback, run for the batch: each temperature decodes
    only the windows the previous one failed (the first pass reuses the batch's encoding)."""

    def __init__(
        self,
        model: WhisperModel,
        features: npt.NDArray[np.float32],
        windows: list[_Window],
        tokenizers: dict[str, Tokenizer],
        options: TranscribeOptions,
    ) -> None:
        self.model, self.features, self.windows = model, features, windows
        self.tokenizers, self.options = tokenizers, options
        self.tries: dict[int, list[_Decoded]] = {i: [] for i in range(len(windows))}

    def run(self, encoded: Any) -> None:
        pending = list(range(len(self.windows)))
        for step, temperature in enumerate(self.options.temperatures or (0.0,)):
            inputs = encoded if step == 0 else self.model.encode(self.features[pending])
            pending = self._decode(inputs, pending, temperature)
            if not pending:
                return
        for index in pending:  # every temperature failed: keep the most likely try
            self.windows[index].decoded = self._best(self.tries[index])

    def _decode(self, inputs: Any, indexes: list[int], temperature: float) -> list[int]:
        prompts = [self._prompt(self.windows[i]) for i in indexes]
        results = self.model.model.generate(inputs, prompts, **self._kwargs(temperature))
        failed = []
        for index, result in zip(indexes, results, strict=True):
            decoded = self._judge(index, result, temperature)
            if decoded is None:
                failed.append(index)
            else:
                self.windows[index].decoded = decoded
        return failed

    def _prompt(self, window: _Window) -> list[int]:
        tokenizer = self.tokenizers[window.language]
        previous = tokenizer.encode(" " + self.options.initial_prompt.strip()) if self.options.initial_prompt else []
        return list(self.model.get_prompt(tokenizer, previous_tokens=previous))

    def _kwargs(self, temperature: float) -> dict[str, Any]:
        tokenizer = next(iter(self.tokenizers.values()))  # suppressed ids do not depend on the language
        sampling: dict[str, Any] = (
            {"beam_size": 1, "num_hypotheses": _BEST_OF, "sampling_topk": 0, "sampling_temperature": temperature}
            if temperature > 0
            else {"beam_size": self.options.beam_size, "patience": 1}
        )
        return {
            "length_penalty": 1,
            "max_length": self.model.max_length,
            "return_scores": True,
            "return_no_speech_prob": True,
            "suppress_blank": True,
            "suppress_tokens": list(get_suppressed_tokens(tokenizer, [-1]) or ()),
            "max_initial_timestamp_index": _MAX_INITIAL_TIMESTAMP_INDEX,
            **sampling,
        }

    def _judge(self, index: int, result: Any, temperature: float) -> _Decoded | None:
        """The decode, or None when faster-whisper would try the next temperature."""
        tokens = list(result.sequences_ids[0])
        text = self.tokenizers[self.windows[index].language].decode(tokens).strip()
        decoded = _Decoded(
            tokens=tokens,
            avg_logprob=float(result.scores[0]) * len(tokens) / (len(tokens) + 1),
            no_speech_prob=float(result.no_speech_prob),
            temperature=temperature,
            compression_ratio=get_compression_ratio(text),
        )
        self.tries[index].append(decoded)
        return None if _needs_fallback(decoded, self.options) else decoded

    def _best(self, tries: list[_Decoded]) -> _Decoded:
        threshold = self.options.compression_ratio_threshold
        readable = [t for t in tries if threshold is None or t.compression_ratio <= threshold]
        best = max(readable or tries, key=lambda t: t.avg_logprob)
        # faster-whisper reports the last temperature tried, whichever try it keeps
        return replace(best, temperature=tries[-1].temperature)


def _needs_fallback(decoded: _Decoded, options: TranscribeOptions) -> bool:
    repetitive = (
        options.compression_ratio_threshold is not None
        and decoded.compression_ratio > options.compression_ratio_threshold
    )
    unlikely = options.log_prob_threshold is not None and decoded.avg_logprob < options.log_prob_threshold
    silent = (
        options.no_speech_threshold is not None and decoded.no_speech_prob > options.no_speech_threshold and unlikely
    )
    return (repetitive or unlikely) and not silent


def _skipped(decoded: _Decoded, options: TranscribeOptions) -> bool:
    """faster-whisper's no-speech rule: a likely-silent window yields nothing."""
    if options.no_speech_threshold is None or decoded.no_speech_prob <= options.no_speech_threshold:
        return False
    return options.log_prob_threshold is None or decoded.avg_logprob <= options.log_prob_threshold


def _segments(
    model: WhisperModel, tokenizer: Tokenizer, window: _Window, options: TranscribeOptions
) -> list[dict[str, Any]]:
    decoded = window.decoded
    if decoded is None or _skipped(decoded, options):
        return []
    found, _seek, _single_ending = model._split_segments_by_timestamps(
        tokenizer=tokenizer,
        tokens=decoded.tokens,
        time_offset=0.0,
        segment_size=window.frames,
        segment_duration=window.duration,
        seek=0,
    )
    found += _tail(tokenizer, decoded.tokens, found, window.duration)
    kept = []
    for segment in found:
        text = tokenizer.decode(segment["tokens"])
        if segment["start"] != segment["end"] and text.strip():
            kept.append({**segment, "text": text, "decoded": decoded})
    return kept


def _tail(
    tokenizer: Tokenizer, tokens: list[int], found: list[dict[str, Any]], duration: float
) -> list[dict[str, Any]]:
    """Text after the last closed segment, which faster-whisper would seek back to and decode
    again; a single pass keeps it as a segment that runs to the end of the window."""
    rest = tokens[sum(len(segment["tokens"]) for segment in found) :]
    if not any(token < tokenizer.eot for token in rest):
        return []
    stamps = [token - tokenizer.timestamp_begin for token in rest if token >= tokenizer.timestamp_begin]
    start = min(stamps[0] * 0.02, duration) if stamps else (found[-1]["end"] if found else 0.0)
    return [{"seek": 0, "start": start, "end": duration, "tokens": rest}]


def _add_words(
    model: WhisperModel,
    features: npt.NDArray[np.float32],
    encoded: Any,
    windows: list[_Window],
    segments: list[list[dict[str, Any]]],
    tokenizers: dict[str, Tokenizer],
) -> None:
    """Word timings: one ``align`` call per language in the batch, then faster-whisper's
    own clean-up run for each window on its own (its state is per clip)."""
    for language, tokenizer in tokenizers.items():
        indexes = [i for i, w in enumerate(windows) if w.language == language]
        inputs = encoded if len(indexes) == len(windows) else model.encode(features[indexes])
        text = [[t for s in segments[i] for t in s["tokens"] if t < tokenizer.eot] for i in indexes]
        frames = [windows[i].frames for i in indexes]
        alignments = model.find_alignment(tokenizer, text, inputs, frames)
        for index, alignment in zip(indexes, alignments, strict=True):
            if segments[index]:
                aligned = _Aligned(alignment, model.frames_per_second)
                WhisperModel.add_word_timestamps(
                    aligned, [segments[index]], tokenizer, None, [windows[index].frames], _PREPEND, _APPEND, 0.0
                )


class _Aligned:
    """Stands in for ``WhisperModel`` inside ``add_word_timestamps``: the alignment is
    already computed (for the whole batch), the clean-up is run for one window."""

    def __init__(self, alignment: list[dict[str, Any]], frames_per_second: float) -> None:
        self.alignment = alignment
        self.frames_per_second = frames_per_second

    def find_alignment(self, *_args: Any) -> list[list[dict[str, Any]]]:
        return [self.alignment]


def _segment(index: int, raw: dict[str, Any]) -> Segment:
    decoded: _Decoded = raw["decoded"]
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
