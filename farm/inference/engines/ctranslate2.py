"""The CTranslate2 back end, through faster-whisper: the default on CPU and GPU.

Clips of up to 30 s (each packed window of the batcher is one) are decoded together:
one encoder call per pass for the batch, one ``generate`` with a prompt per window, and
a further pass for the windows Whisper stopped short of their end, as faster-whisper
seeks (``farm.inference.engines.ct2_windows``). Longer clips go through faster-whisper's own
sequential long-form loop, one at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

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
from farm.inference.engines.ct2_windows import PassCallback, decode_windows, fits_one_window
from farm.inference.engines.failures import translate_failure
from farm.inference.signal import SAMPLE_RATE, Audio


class CTranslate2Engine:
    """faster-whisper's ``WhisperModel``, loaded once in the constructor."""

    name = "ctranslate2"

    def __init__(self, config: EngineConfig) -> None:
        from faster_whisper import WhisperModel

        with translate_failure():
            self.model = WhisperModel(
                config.model,
                device=config.device,
                compute_type=config.compute_type,
                cpu_threads=config.cpu_threads,
                num_workers=config.num_workers,
            )
        self.multilingual = bool(self.model.model.is_multilingual)

    def transcribe(
        self,
        batch: Sequence[Audio],
        options: TranscribeOptions,
        on_progress: ProgressCallback | None = None,
    ) -> list[Transcript]:
        """Clips of up to 30 s go through one batched call; longer ones (and VAD) one by one."""
        windowed = [i for i, audio in enumerate(batch) if fits_one_window(audio) and not options.vad_filter]
        results: dict[int, Transcript] = {}
        if windowed:
            # a lone clip (a job's) reports each decode pass; a batch reports once it is done
            on_pass = _pass_progress(on_progress) if len(windowed) == 1 else None
            clips = [batch[i] for i in windowed]
            results.update(zip(windowed, self._transcribe_windows(clips, options, on_pass), strict=True))
        done = sum(len(batch[i]) for i in windowed) / SAMPLE_RATE
        if windowed and on_progress is not None:
            on_progress(Progress(done, results[windowed[-1]].segments))
        for index, audio in enumerate(batch):
            if index not in results:
                results[index] = self._transcribe_one(audio, options, _offset_progress(on_progress, done))
                done += len(audio) / SAMPLE_RATE
        return [results[i] for i in range(len(batch))]

    def _transcribe_windows(
        self, batch: list[Audio], options: TranscribeOptions, on_pass: PassCallback | None = None
    ) -> list[Transcript]:
        started = time.perf_counter()
        with translate_failure():
            decoded = decode_windows(self.model, batch, options, on_pass)
        elapsed = time.perf_counter() - started
        return [
            Transcript(
                segments=window.segments,
                language=window.language,
                language_probability=window.language_probability,
                duration=len(audio) / SAMPLE_RATE,
                timings=Timings(decode_s=elapsed),  # one call for the whole batch
            )
            for audio, window in zip(batch, decoded, strict=True)
        ]

    def _transcribe_one(self, audio: Audio, options: TranscribeOptions, on_progress: ProgressCallback) -> Transcript:
        started = time.perf_counter()
        with translate_failure():
            segments, info = self.model.transcribe(audio, **_fw_kwargs(options))
            decoded = tuple(_reporting(_segments(segments), on_progress))
        return Transcript(
            segments=decoded,
            language=info.language,
            language_probability=float(info.language_probability),
            duration=len(audio) / SAMPLE_RATE,
            timings=Timings(decode_s=time.perf_counter() - started),
        )

    def greedy_tokens(self, features: npt.NDArray[np.float32], prompt: Sequence[int]) -> list[list[int]]:
        import ctranslate2

        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))
        prompts = [list(prompt)] * features.shape[0]
        with translate_failure():
            results = self.model.model.generate(storage, prompts, beam_size=1, max_length=448, suppress_blank=False)
        return [list(result.sequences_ids[0]) for result in results]


def _fw_kwargs(options: TranscribeOptions) -> dict[str, Any]:
    return {
        "language": options.language,
        "task": options.task,
        "beam_size": options.beam_size,
        "temperature": list(options.temperatures),
        "initial_prompt": options.initial_prompt,
        "word_timestamps": options.word_timestamps,
        "compression_ratio_threshold": options.compression_ratio_threshold,
        "log_prob_threshold": options.log_prob_threshold,
        "no_speech_threshold": options.no_speech_threshold,
        "condition_on_previous_text": options.condition_on_previous_text,
        "vad_filter": options.vad_filter,
    }


def _segments(segments: Iterable[Any]) -> Iterator[Segment]:
    return (
        Segment(
            id=index,
            start=float(seg.start),
            end=float(seg.end),
            text=seg.text,
            avg_logprob=float(seg.avg_logprob),
            no_speech_prob=float(seg.no_speech_prob),
            compression_ratio=float(seg.compression_ratio),
            temperature=float(seg.temperature or 0.0),
            words=tuple(_word(w) for w in seg.words or ()),
        )
        for index, seg in enumerate(segments)
    )


def _word(word: Any) -> Word:
    return Word(float(word.start), float(word.end), word.word, float(word.probability))


def _reporting(segments: Iterable[Segment], on_progress: ProgressCallback) -> Iterator[Segment]:
    # faster-whisper decodes lazily, a 30 s window per pass: each yielded segment is real progress.
    so_far: list[Segment] = []
    for segment in segments:
        so_far.append(segment)
        on_progress(Progress(segment.end, tuple(so_far)))
        yield segment


def _pass_progress(on_progress: ProgressCallback | None) -> PassCallback | None:
    if on_progress is None:
        return None
    return lambda _window, seconds, segments: on_progress(Progress(seconds, segments))


def _offset_progress(on_progress: ProgressCallback | None, offset: float) -> ProgressCallback:
    if on_progress is None:
        return lambda _progress: None
    return lambda progress: on_progress(replace(progress, seconds=offset + progress.seconds))
