"""The Hugging Face ``transformers`` back end: PyTorch Whisper on CPU or CUDA.

It takes a converted model directory (see ``farm.inference.weights.convert``) and the same log-mel
features as the CTranslate2 engine (``farm.inference.engines.features``), so the two can be compared
token for token. Long inputs go through transformers' sequential long-form decoding.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from transformers import (
    GenerationConfig,
    GenerationMixin,
    LogitsProcessorList,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTimeStampLogitsProcessor,
)

from farm.errors import ConfigError, ModelNotFoundError, ResourceExhaustedError, UnknownLanguageError
from farm.inference.engines.base import (
    EngineConfig,
    Progress,
    ProgressCallback,
    Segment,
    Timings,
    TranscribeOptions,
    Transcript,
    Word,
)
from farm.inference.engines.failures import translate_failure
from farm.inference.engines.features import HOP_LENGTH, N_FRAMES, log_mel, log_mel_frames, pad_or_trim
from farm.inference.signal import SAMPLE_RATE, Audio

_FRAME_S = HOP_LENGTH / SAMPLE_RATE
_MAX_LENGTH = 448
# CTranslate2's quantized types have no torch twin here: run their float half instead,
# so one compute_type setting works for either engine.
_DTYPES = {
    "float32": torch.float32,
    "int8": torch.float32,
    "int8_float32": torch.float32,
    "float16": torch.float16,
    "int8_float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int8_bfloat16": torch.bfloat16,
}


@dataclass(frozen=True)
class _Batch:
    """Features for one ``generate`` call; the mask marks each input's real frames."""

    features: torch.Tensor
    attention_mask: torch.Tensor
    durations: tuple[float, ...]


class TransformersEngine:
    """``WhisperForConditionalGeneration`` and its processor, loaded once in the constructor."""

    name = "transformers"

    def __init__(self, config: EngineConfig) -> None:
        if config.cpu_threads > 0:
            torch.set_num_threads(config.cpu_threads)
        self.device = _device(config.device)
        self.dtype = _dtype(config.compute_type, self.device)
        self.model, self.processor = _load(config.model, self.device, self.dtype)
        self.generation_config: GenerationConfig = self.model.generation_config
        whisper_only = self.generation_config.to_dict()  # Whisper's extra keys are untyped attributes
        self.multilingual = bool(whisper_only.get("is_multilingual", False))
        self._lang_to_id: dict[str, int] = dict(whisper_only.get("lang_to_id") or {})
        self._no_timestamps = int(whisper_only["no_timestamps_token_id"])
        self._eot = int(self.generation_config.eos_token_id)

    def transcribe(
        self,
        batch: Sequence[Audio],
        options: TranscribeOptions,
        on_progress: ProgressCallback | None = None,
    ) -> list[Transcript]:
        """Transcribe ``batch`` in one ``generate`` call; VAD filtering is not applied here."""
        if not batch:
            return []
        started = time.perf_counter()
        inputs = self._features(batch)
        with _oom_is_retryable(), torch.inference_mode():
            languages = self._languages(inputs.features[..., :N_FRAMES], options.language, len(batch))
            output = self._generate(inputs, options, [code for code, _ in languages], on_progress)
        elapsed = time.perf_counter() - started
        if on_progress is not None:
            on_progress(Progress(sum(inputs.durations)))
        return [
            Transcript(
                segments=self._segments(raw, duration),
                language=language,
                language_probability=probability,
                duration=duration,
                timings=Timings(decode_s=elapsed),  # one call for the whole batch
            )
            for raw, duration, (language, probability) in zip(
                output["segments"], inputs.durations, languages, strict=True
            )
        ]

    def greedy_tokens(self, features: npt.NDArray[np.float32], prompt: Sequence[int]) -> list[list[int]]:
        """Greedy-decode ``features`` after ``prompt``; ids exclude the prompt and EOS.

        Only the model's ``suppress_tokens`` apply (no blank suppression at the start),
        matching ``CTranslate2Engine.greedy_tokens``; timestamp rules apply when the
        prompt lacks <|notimestamps|>, as in CTranslate2.
        """
        inputs = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        prompts = torch.tensor([list(prompt)] * inputs.shape[0], dtype=torch.long, device=self.device)
        processors = LogitsProcessorList()
        if self._no_timestamps not in prompt:
            processors.append(WhisperTimeStampLogitsProcessor(self.generation_config, begin_index=len(prompt)))
        with _oom_is_retryable(), torch.inference_mode():
            # GenerationMixin's plain generate: Whisper's own one rewrites the prompt
            sequences = GenerationMixin.generate(
                self.model,
                input_features=inputs.to(self.device, self.dtype),
                # unused by Whisper's encoder; given so generate does not warn about padding
                attention_mask=torch.ones(inputs.shape[0], inputs.shape[-1], dtype=torch.long, device=self.device),
                decoder_input_ids=prompts,
                generation_config=self._greedy_config(),
                logits_processor=processors,
            )
        return [_until(row[len(prompt) :].tolist(), self._eot) for row in sequences]

    def _greedy_config(self) -> GenerationConfig:
        config = copy.deepcopy(self.generation_config)
        config.num_beams, config.do_sample, config.max_length = 1, False, _MAX_LENGTH
        config.begin_suppress_tokens = None
        return config

    def _features(self, batch: Sequence[Audio]) -> _Batch:
        n_mels = int(self.model.config.num_mel_bins)
        mels = [log_mel(a, n_mels) if len(a) <= N_FRAMES * HOP_LENGTH else log_mel_frames(a, n_mels) for a in batch]
        frames = max(mel.shape[-1] for mel in mels)
        features = torch.from_numpy(np.stack([pad_or_trim(mel, frames) for mel in mels]))
        # long-form decoding and word alignment read each input's true length off the mask
        lengths = torch.tensor([min(len(a) // HOP_LENGTH + 1, frames) for a in batch])
        mask = (torch.arange(frames)[None, :] < lengths[:, None]).long().to(self.device)
        return _Batch(
            features=features.to(self.device, self.dtype),
            attention_mask=mask,
            durations=tuple(len(a) / SAMPLE_RATE for a in batch),
        )

    def _languages(self, window: torch.Tensor, requested: str | None, size: int) -> list[tuple[str, float]]:
        if not self.multilingual:
            if requested not in (None, "en"):
                raise UnknownLanguageError(f"language {requested!r}: this model is English-only")
            return [("en", 1.0)] * size
        if requested is not None:
            if f"<|{requested}|>" not in self._lang_to_id:
                raise UnknownLanguageError(f"language {requested!r} is not one this model knows")
            return [(requested, 1.0)] * size
        return self._detect(window)

    def _detect(self, window: torch.Tensor) -> list[tuple[str, float]]:
        """The most likely language token after <|startoftranscript|>, with its probability."""
        start = torch.full((window.shape[0], 1), int(self.generation_config.decoder_start_token_id))
        logits = self.model(input_features=window, decoder_input_ids=start.to(self.device)).logits[:, -1]
        tokens = list(self._lang_to_id)
        ids = torch.tensor([self._lang_to_id[token] for token in tokens], device=self.device)
        probs = logits[:, ids].float().softmax(dim=-1)
        best = probs.argmax(dim=-1).tolist()
        return [(tokens[b].strip("<|>"), float(probs[i, b])) for i, b in enumerate(best)]

    def _generate(
        self,
        inputs: _Batch,
        options: TranscribeOptions,
        languages: list[str],
        on_progress: ProgressCallback | None,
    ) -> dict[str, Any]:
        kwargs = _generate_kwargs(options)
        # English-only models have no language or task tokens: "translate" is transcription
        if self.multilingual:
            kwargs.update(language=[f"<|{code}|>" for code in languages], task=options.task)
        if options.initial_prompt:
            prompt = self.processor.get_prompt_ids(options.initial_prompt, return_tensors="pt")
            kwargs["prompt_ids"] = prompt.to(self.device)
        if on_progress is not None:
            kwargs["monitor_progress"] = _progress_reporter(on_progress)
        attention = self.model.config._attn_implementation
        try:
            output: dict[str, Any] = self.model.generate(
                inputs.features, attention_mask=inputs.attention_mask, **kwargs
            )
        finally:
            # token timestamps switch the model to eager attention for good; undo that
            self.model.config._attn_implementation = attention
        return output

    def _segments(self, raw: list[dict[str, Any]], duration: float) -> tuple[Segment, ...]:
        segments: list[Segment] = []
        for piece in raw:
            tokens = [int(t) for t in piece["tokens"]]
            text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True)
            if not text.strip():
                continue
            start = min(float(piece["start"]), duration)
            end = min(max(float(piece["end"]), start), duration)
            words = self._words(tokens, piece.get("token_timestamps"), start, end)
            segments.append(Segment(id=len(segments), start=start, end=end, text=text, words=words))
        return tuple(segments)

    def _words(self, tokens: list[int], stamps: torch.Tensor | None, start: float, end: float) -> tuple[Word, ...]:
        """Group text tokens into words at leading spaces; token i ends at stamps[i]."""
        if stamps is None:
            return ()
        times = [min(max(float(t), start), end) for t in stamps]
        words: list[Word] = []
        current: list[int] = []
        word_start = start
        for index, token in enumerate(tokens):
            if token >= self._eot:
                continue
            piece = self.processor.tokenizer.decode([token])
            if current and piece.startswith(" "):
                words.append(self._word(current, word_start, times[index - 1]))
                current = []
            if not current:
                word_start = times[index - 1] if index > 0 else start
            current.append(token)
        if current:
            last = max(i for i, t in enumerate(tokens) if t < self._eot)
            words.append(self._word(current, word_start, times[last]))
        return tuple(words)

    def _word(self, tokens: list[int], start: float, end: float) -> Word:
        # per-token probabilities are not kept by transformers' long-form loop
        return Word(start=start, end=max(end, start), word=self.processor.tokenizer.decode(tokens), probability=0.0)


def _generate_kwargs(options: TranscribeOptions) -> dict[str, Any]:
    temperatures = options.temperatures or (0.0,)
    return {
        "return_timestamps": True,
        "return_segments": True,
        "return_token_timestamps": options.word_timestamps,
        "num_beams": options.beam_size,
        "temperature": temperatures if len(temperatures) > 1 else temperatures[0],
        "compression_ratio_threshold": options.compression_ratio_threshold,
        "logprob_threshold": options.log_prob_threshold,
        # transformers only applies the no-speech test together with a logprob threshold
        "no_speech_threshold": options.no_speech_threshold if options.log_prob_threshold is not None else None,
        "condition_on_prev_tokens": options.condition_on_previous_text,
    }


def _progress_reporter(on_progress: ProgressCallback) -> Any:
    def report(progress: torch.Tensor) -> None:
        seek, total = progress[:, 0], progress[:, 1]
        on_progress(Progress(float(torch.minimum(seek, total).sum()) * _FRAME_S))

    return report


def _until(tokens: list[int], eot: int) -> list[int]:
    return tokens[: tokens.index(eot)] if eot in tokens else tokens


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', not {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but torch sees no CUDA device")
    return device


def _dtype(compute_type: str, device: torch.device) -> torch.dtype:
    if compute_type in ("default", "auto"):
        return torch.float16 if device.type == "cuda" else torch.float32
    if compute_type not in _DTYPES:
        raise ConfigError(f"compute_type: {compute_type!r} is not one of default, {', '.join(_DTYPES)}")
    return _DTYPES[compute_type]


def _load(
    model: str, device: torch.device, dtype: torch.dtype
) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
    path = Path(model).expanduser()
    if path.exists() and not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{path} is not a transformers model directory (no config.json)")
    try:
        processor = WhisperProcessor.from_pretrained(str(path) if path.exists() else model)
        # SDPA: PyTorch's fused attention (flash / memory-efficient kernels on CUDA)
        whisper = WhisperForConditionalGeneration.from_pretrained(
            str(path) if path.exists() else model, dtype=dtype, attn_implementation="sdpa"
        )
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load transformers Whisper model {model!r}: {exc}") from exc
    with _oom_is_retryable():
        # transformers' decorator on .to hides its signature from mypy
        whisper = whisper.to(device).eval()  # type: ignore[arg-type]
    return whisper, processor


@contextmanager
def _oom_is_retryable() -> Iterator[None]:
    """CUDA OOM becomes retryable (after freeing the cache); other failures as for every engine."""
    with translate_failure():
        try:
            yield
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()  # so the retry, here or in another job, starts clean
            raise ResourceExhaustedError(f"CUDA out of memory: {exc}") from exc
