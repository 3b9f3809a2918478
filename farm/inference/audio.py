"""Decode any container or codec PyAV can read into 16 kHz mono float32.

Resampling and down-mixing happen inside FFmpeg's resampler, frame by frame, so an
hour-long file never holds more than its decoded 16 kHz samples in memory.
"""

from __future__ import annotations

import io
import itertools
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from farm.errors import AudioDecodeError
from farm.inference.signal import SAMPLE_RATE, Audio

Source = str | Path | bytes | BinaryIO


def decode(source: Source, start: float = 0.0, end: float | None = None, name: str = "") -> Audio:
    """Return the input (or its stretch from ``start`` to ``end`` seconds) as 16 kHz mono
    float32 in [-1, 1]; a stretch is ``decode(source)[int(start * 16000):int(end * 16000)]``.

    A stretch seeks instead of decoding what comes before it: each part of a fanned-out
    hour-long file decodes its own minutes, not the whole hour. ``name`` is what errors call
    the audio when ``source`` holds its bytes (inline, or read from S3).
    """
    span = _Span(int(start * SAMPLE_RATE), None if end is None else int(end * SAMPLE_RATE))
    pcm = _plain_wav(source, span)
    if pcm is not None:
        return pcm
    import av  # only past the plain-WAV path: a host without PyAV still reads WAV

    try:
        with av.open(_as_file(source), mode="r", metadata_errors="ignore") as container:
            samples = _decoded_span(container, span)
    except (AudioDecodeError, av.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise AudioDecodeError(f"{_describe(source, name)} is not decodable audio: {_reason(exc)}") from exc
    if not len(samples) and not span.first:
        raise AudioDecodeError(f"{_describe(source, name)} is not decodable audio: it holds no audio samples")
    return _sanitised(samples)


@dataclass(frozen=True)
class _Span:
    """Sample indexes at 16 kHz: ``first`` up to (not including) ``last``; None: the end."""

    first: int
    last: int | None

    def cut(self, samples: Audio, offset: int) -> Audio:
        """``samples`` begin at sample ``offset`` of the file; keep this span of them."""
        last = None if self.last is None else max(self.last - offset, 0)
        return samples[max(self.first - offset, 0) : last]


def _plain_wav(source: Source, span: _Span) -> Audio | None:
    """16 kHz mono 16-bit PCM WAV (what telephony and most recorders write), read directly.

    Opening any file with FFmpeg costs ~3 ms before the first sample; for a one-second
    clip that was as much as the farm's whole queue. The samples are FFmpeg's exactly.
    """
    if not isinstance(source, (bytes, str, Path)):
        return None  # a stream read here could not be read again by FFmpeg
    try:
        with wave.open(_as_file(source)) as wav:
            if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, SAMPLE_RATE):
                return None
            frames = _wav_frames(wav, span)
    except (wave.Error, EOFError, OSError, RuntimeError, ValueError, struct.error):
        return None  # odd or damaged (the wave module raises all of these): FFmpeg decides
    if len(frames) < 2 and not span.first:
        return None
    return np.frombuffer(frames[: len(frames) // 2 * 2], "<i2").astype(np.float32) / 32768.0


def _wav_frames(wav: wave.Wave_read, span: _Span) -> bytes:
    total = wav.getnframes()
    first = min(span.first, total)
    wav.setpos(first)
    last = total if span.last is None else min(max(span.last, first), total)
    return wav.readframes(last - first)


def _reason(exc: Exception) -> str:
    # FFmpeg's own text, without its error number or the server's file paths.
    strerror = getattr(exc, "strerror", None)
    return str(strerror) if strerror else str(exc).split(": '", 1)[0]


def duration(audio: Audio) -> float:
    return len(audio) / SAMPLE_RATE


def _decoded_span(container: av.container.InputContainer, span: _Span) -> Audio:  # type: ignore[name-defined]  # noqa: F821
    import av

    if not container.streams.audio:
        raise AudioDecodeError("it has no audio track")
    stream = container.streams.audio[0]
    frames, offset = _frames_from(container, stream, span.first)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[Audio] = [np.zeros(0, np.float32)]
    have = offset
    for frame in itertools.chain(frames, [None]):  # None flushes the resampler
        for chunk in _resampled(resampler, frame):
            chunks.append(chunk)
            have += len(chunk)
        if span.last is not None and have >= span.last:
            break  # the rest of the file is not this span's
    return span.cut(np.concatenate(chunks), offset)


def _frames_from(container: Any, stream: Any, first: int) -> tuple[Iterator[Any], int]:
    """Decoded frames from near sample ``first`` on, and the sample index they start at."""
    import av

    if first <= 0:
        return container.decode(stream), 0
    try:
        container.seek(first * 1_000_000 // SAMPLE_RATE)  # to the keyframe at or before it
    except (av.FFmpegError, OSError, ValueError):  # a stream that cannot seek: read through
        return container.decode(stream), 0
    frames = container.decode(stream)
    head = next(frames, None)
    if head is None or head.time is None:  # no timestamps to place the frames: start over
        container.seek(0)
        return container.decode(stream), 0
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    return itertools.chain([head], frames), round((head.time - origin) * SAMPLE_RATE)


def _resampled(resampler: av.AudioResampler, frame: object) -> Iterator[Audio]:  # type: ignore[name-defined]  # noqa: F821
    for out in resampler.resample(frame):
        yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)


def _sanitised(samples: Audio) -> Audio:
    # Float WAVs may carry NaN/Inf; one bad sample would poison the whole mel spectrogram.
    if not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)


def _as_file(source: Source) -> str | BinaryIO:
    if isinstance(source, bytes):
        return io.BytesIO(source)
    if isinstance(source, Path):
        return str(source)
    return source


def _describe(source: Source, name: str = "") -> str:
    if isinstance(source, (str, Path)):
        return f"'{Path(source).name}'"
    return f"'{name}'" if name else "the input"
