"""Audio and not-audio files made on the spot: clips of real speech and broken media."""

from __future__ import annotations

import struct
import wave
import zlib
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from farm.inference.audio import decode
from tests.conftest import JFK

SAMPLE_RATE = 16_000
Samples = npt.NDArray[np.float32]


@cache
def jfk_samples() -> Samples:
    """JFK's 11 s at 16 kHz mono; cached, so treat it as read-only."""
    return decode(JFK)


def clip(directory: Path, seconds: float, name: str = "", offset: float = 0.0) -> Path:
    """``seconds`` of JFK (looped when longer than the speech) as a 16 kHz WAV file."""
    speech = jfk_samples()
    start = int(offset * SAMPLE_RATE)
    wanted = int(seconds * SAMPLE_RATE)
    looped = np.tile(speech, wanted // len(speech) + 2)[start : start + wanted]
    return write_wav(directory / (name or f"jfk-{seconds:g}s-{offset:g}.wav"), looped)


def write_wav(path: Path, samples: npt.NDArray[np.floating], rate: int = SAMPLE_RATE, channels: int = 1) -> Path:
    """16-bit PCM WAV; ``samples`` in [-1, 1], interleaved when channels > 1."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def wav_header(
    data_bytes: int, rate: int = SAMPLE_RATE, channels: int = 1, bits: int = 16, floats: bool = False
) -> bytes:
    """A canonical 44-byte RIFF/WAVE header announcing ``data_bytes`` of samples."""
    block = channels * bits // 8
    fmt = struct.pack("<IHHIIHH", 16, 3 if floats else 1, channels, rate, rate * block, block, bits)
    riff = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    return riff + b"fmt " + fmt + b"data" + struct.pack("<I", data_bytes)


def float_wav_with_nan_inf(seconds: float = 3.0) -> bytes:
    samples = jfk_samples()[: int(seconds * SAMPLE_RATE)].astype("<f4")
    samples[::50] = np.nan
    samples[1::97] = np.inf
    samples[2::101] = -np.inf
    return wav_header(samples.nbytes, bits=32, floats=True) + samples.tobytes()


def resampled(samples: Samples, rate: int) -> Samples:
    positions = np.arange(int(len(samples) * rate / SAMPLE_RATE)) * SAMPLE_RATE / rate
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    """A valid red PNG image."""
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def video_without_audio(path: Path, frames: int = 10) -> Path:
    """An MPEG-4 video with a picture track only."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            picture = np.full((48, 64, 3), index * 20, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def bad_inputs(directory: Path) -> dict[str, Path]:
    """Every file case, written into ``directory`` (an allowed input root)."""
    speech = jfk_samples()[: 3 * SAMPLE_RATE]
    flac = JFK.read_bytes()
    outside = directory.parent / "outside"
    outside.mkdir(exist_ok=True)
    raw: dict[str, bytes] = {
        "empty.wav": b"",
        "header_only.wav": wav_header(0),
        "truncated_head.flac": flac[:4096],
        "truncated_half.flac": flac[: len(flac) // 2],
        "random.wav": np.random.default_rng(7).bytes(65_536),
        "notes.wav": b"a shopping list, not a recording\n" * 40,
        "photo.png": png_bytes(),
        "photo_named.wav": png_bytes(),
        "float_nan_inf.wav": float_wav_with_nan_inf(),
    }
    files = {name: _write(directory / name, data) for name, data in raw.items()}
    files["video_no_audio.mp4"] = video_without_audio(directory / "video_no_audio.mp4")
    files["short_0.1s.wav"] = write_wav(directory / "short_0.1s.wav", speech[:1600])
    six = np.repeat(speech[:, None], 6, axis=1).reshape(-1)
    files["six_channels.wav"] = write_wav(directory / "six_channels.wav", six, channels=6)
    files["8khz.wav"] = write_wav(directory / "8khz.wav", resampled(speech, 8000), rate=8000)
    files["96khz.wav"] = write_wav(directory / "96khz.wav", resampled(speech, 96000), rate=96000)
    files["over_size_limit.wav"] = clip(directory, 40.0, "over_size_limit.wav")  # 1.3 MB > 1 MiB
    files["symlink_to_passwd.wav"] = _link(directory / "symlink_to_passwd.wav", Path("/etc/passwd"))
    real_audio_outside = clip(outside, 3.0, "elsewhere.wav")
    files["symlink_to_audio_outside.wav"] = _link(directory / "symlink_to_audio_outside.wav", real_audio_outside)
    return files


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path
