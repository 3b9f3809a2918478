"""One pass's decode of a batch of 30 s windows on CTranslate2, with faster-whisper's
temperature fallback: each temperature decodes only the windows the previous one failed,
from the pass's encoding. The seek loop that runs the passes is ``ct2_windows``; this
module knows a window only by its language and its prompt."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import WhisperModel, get_compression_ratio, get_suppressed_tokens

from farm.inference.engines.base import TranscribeOptions

_BEST_OF = 5  # faster-whisper's defaults for what TranscribeOptions does not carry
_MAX_INITIAL_TIMESTAMP_INDEX = 50  # 1.0 s in 0.02 s steps


@dataclass(frozen=True)
class Prompted:
    """What one window brings to a pass's decode."""

    language: str
    prompt: list[int]  # the prompt tokens: the text it has so far, since the last reset


@dataclass(frozen=True)
class Decoded:
    """One window's decode in one pass, as faster-whisper judges it."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float


class Fallback:
    """faster-whisper's temperature fallback, run for one pass. CTranslate2 wants the same
    prompt length across a ``generate`` call, so windows whose prompts differ in length go
    through separate calls."""

    def __init__(
        self,
        model: WhisperModel,
        features: npt.NDArray[np.float32],
        windows: list[Prompted],
        tokenizers: dict[str, Tokenizer],
        options: TranscribeOptions,
    ) -> None:
        self.model, self.features, self.windows = model, features, windows
        self.tokenizers, self.options = tokenizers, options
        self.tries: dict[int, list[Decoded]] = {i: [] for i in range(len(windows))}
        self.decoded: list[Decoded | None] = [None] * len(windows)

    def run(self, encoded: Any) -> list[Decoded | None]:
        """Each window's decode, in the order of ``windows``."""
        pending = list(range(len(self.windows)))
        for temperature in self.options.temperatures or (0.0,):
            pending = sorted(i for group in self._groups(pending) for i in self._decode(encoded, group, temperature))
            if not pending:
                return self.decoded
        for index in pending:  # every temperature failed: keep the most likely try
            self.decoded[index] = self._best(self.tries[index])
        return self.decoded

    def _groups(self, indexes: list[int]) -> list[list[int]]:
        prompts = [len(self.windows[i].prompt) for i in indexes]
        return [[i for i, n in zip(indexes, prompts, strict=True) if n == length] for length in sorted(set(prompts))]

    def _decode(self, encoded: Any, indexes: list[int], temperature: float) -> list[int]:
        inputs = encoder_rows(self.model, encoded, self.features, indexes)
        prompts = [self.windows[i].prompt for i in indexes]
        results = self.model.model.generate(inputs, prompts, **self._kwargs(temperature))
        failed = []
        for index, result in zip(indexes, results, strict=True):
            decoded = self._judge(index, result, temperature)
            if decoded is None:
                failed.append(index)
            else:
                self.decoded[index] = decoded
        return failed

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

    def _judge(self, index: int, result: Any, temperature: float) -> Decoded | None:
        """The decode, or None when faster-whisper would try the next temperature."""
        tokens = list(result.sequences_ids[0])
        text = self.tokenizers[self.windows[index].language].decode(tokens).strip()
        decoded = Decoded(
            tokens=tokens,
            avg_logprob=float(result.scores[0]) * len(tokens) / (len(tokens) + 1),
            no_speech_prob=float(result.no_speech_prob),
            temperature=temperature,
            compression_ratio=get_compression_ratio(text),
        )
        self.tries[index].append(decoded)
        return None if _needs_fallback(decoded, self.options) else decoded

    def _best(self, tries: list[Decoded]) -> Decoded:
        threshold = self.options.compression_ratio_threshold
        readable = [t for t in tries if threshold is None or t.compression_ratio <= threshold]
        best = max(readable or tries, key=lambda t: t.avg_logprob)
        # faster-whisper reports the last temperature tried, whichever try it keeps
        return replace(best, temperature=tries[-1].temperature)


def _needs_fallback(decoded: Decoded, options: TranscribeOptions) -> bool:
    repetitive = (
        options.compression_ratio_threshold is not None
        and decoded.compression_ratio > options.compression_ratio_threshold
    )
    unlikely = options.log_prob_threshold is not None and decoded.avg_logprob < options.log_prob_threshold
    silent = (
        options.no_speech_threshold is not None and decoded.no_speech_prob > options.no_speech_threshold and unlikely
    )
    return (repetitive or unlikely) and not silent


def skipped(decoded: Decoded, options: TranscribeOptions) -> bool:
    """faster-whisper's no-speech rule: a likely-silent window yields nothing."""
    if options.no_speech_threshold is None or decoded.no_speech_prob <= options.no_speech_threshold:
        return False
    return options.log_prob_threshold is None or decoded.avg_logprob <= options.log_prob_threshold


def encoder_rows(model: WhisperModel, encoded: Any, features: npt.NDArray[np.float32], rows: list[int]) -> Any:
    """The encoder output of some of the batch's windows."""
    if rows == list(range(int(encoded.shape[0]))):
        return encoded
    if encoded.device == "cpu":  # a copy of those rows: the same numbers, no second encode
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(encoded)[rows]))
    return model.encode(features[rows])
