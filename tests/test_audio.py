from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from farm.errors import AudioDecodeError
from farm.inference import audio
from tests.conftest import EVAL, JFK

# (suffix, container format, codec, sample rate, channels)
ENCODINGS = [
    ("wav", "wav", "pcm_s16le", 16000, 1),  # read without FFmpeg
    ("wav", "wav", "pcm_s16le", 16000, 2),
    ("wav", "wav", "pcm_s16le", 8000, 1),
    ("wav", "wav", "pcm_f32le", 96000, 2),
    ("flac", "flac", "flac", 44100, 2),
    ("mp3", "mp3", "libmp3lame", 22050, 1),
    ("m4a", "mp4", "aac", 48000, 2),
    ("ogg", "ogg", "libopus", 48000, 1),
    ("webm", "webm", "libopus", 48000, 2),
    ("flac", "flac", "flac", 32000, 6),
]


def encode(samples: np.ndarray, rate: int, target: Path, fmt: str, codec: str, channels: int) -> None:
    """Write ``samples`` (mono float32 at 16 kHz) with PyAV in another codec/layout/rate."""
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    with av.open(str(target), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = 16000
        for converted in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.mark.parametrize(("suffix", "fmt", "codec", "rate", "channels"), ENCODINGS)
def test_decodes_common_formats(tmp_path: Path, suffix: str, fmt: str, codec: str, rate: int, channels: int) -> None:
    original = audio.decode(JFK)
    target = tmp_path / f"jfk-{codec}-{rate}-{channels}.{suffix}"
    encode(original, rate, target, fmt, codec, channels)
    decoded = audio.decode(target)
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert abs(audio.duration(decoded) - 11.0) < 0.15
    assert np.abs(decoded).max() <= 1.0
    # The same speech comes back: the loudness envelopes correlate strongly.
    n = min(len(decoded), len(original)) // 1600 * 1600
    env_a = np.abs(original[:n]).reshape(-1, 1600).mean(axis=1)
    env_b = np.abs(decoded[:n]).reshape(-1, 1600).mean(axis=1)
    assert np.corrcoef(env_a, env_b)[0, 1] > 0.9


def ffmpeg_decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)]) / 32768.0


def test_plain_16k_wav_gives_ffmpegs_samples_exactly(tmp_path: Path) -> None:
    target = tmp_path / "jfk.wav"
    encode(audio.decode(JFK), 16000, target, "wav", "pcm_s16le", 1)
    for source in (target, str(target), target.read_bytes()):
        fast = audio.decode(source)
        assert fast.dtype == np.float32 and np.array_equal(fast, ffmpeg_decode(target).astype(np.float32))


def test_a_wav_that_only_looks_plain_still_decodes_or_fails_clearly(tmp_path: Path) -> None:
    data = bytearray(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(30))  # a header with nothing behind it
    with pytest.raises(AudioDecodeError, match="not decodable audio"):
        audio.decode(bytes(data))


@pytest.mark.parametrize(("suffix", "fmt", "codec", "rate", "channels"), ENCODINGS)
def test_a_stretch_is_the_whole_file_sliced(
    tmp_path: Path, suffix: str, fmt: str, codec: str, rate: int, channels: int
) -> None:
    target = tmp_path / f"long-{codec}-{rate}-{channels}.{suffix}"
    encode(np.tile(audio.decode(JFK), 3), rate, target, fmt, codec, channels)  # 33 s: seeking skips frames
    start, end = 12.3, 20.8
    expected = audio.decode(target)[int(start * 16000) : int(end * 16000)]
    stretch = audio.decode(target, start, end)
    assert abs(len(stretch) - len(expected)) <= 16  # 1 ms
    n = min(len(stretch), len(expected))
    settled = slice(64, n)  # a resampler starting afresh differs for its first few samples
    if rate == 16000:  # nothing to resample: the very same samples
        assert np.abs(stretch[settled] - expected[settled]).max() < 1e-4
    else:  # resampling from another start point lands between the old output samples
        assert np.corrcoef(stretch[settled], expected[settled])[0, 1] > 0.95


def test_a_stretch_deep_in_a_long_file_and_past_its_end() -> None:
    long = EVAL / "longform" / "librispeech_test-other_dev_50utt.flac"  # 406 s at 16 kHz
    whole = audio.decode(long)
    assert np.array_equal(audio.decode(long.read_bytes(), 300.0, 330.0), whole[300 * 16000 : 330 * 16000])
    assert np.array_equal(audio.decode(long, 400.5, 999.0), whole[int(400.5 * 16000) :])
    assert len(audio.decode(long, 500.0, 510.0)) == 0  # past the end: nothing, not an error


def test_resamples_real_files_to_16k() -> None:
    eight_k = audio.decode(EVAL / "joinly" / "OSR_us_000_0034_8k.wav")
    assert abs(audio.duration(eight_k) - 35.55) < 0.1
    assert abs(audio.duration(audio.decode(EVAL / "whisper_cpp" / "jfk.mp3")) - 11.0) < 0.1


def test_accepts_bytes_and_file_objects() -> None:
    data = JFK.read_bytes()
    assert len(audio.decode(data)) == len(audio.decode(JFK))


def test_float_wav_with_nan_and_inf_is_sanitised(tmp_path: Path) -> None:
    samples = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    samples[100:200] = np.nan
    samples[300] = np.inf
    target = tmp_path / "nan.wav"
    encode(samples, 16000, target, "wav", "pcm_f32le", 1)
    decoded = audio.decode(target)
    assert np.isfinite(decoded).all()


@pytest.mark.parametrize(
    "payload",
    [b"", b"RIFF\x00\x00\x00\x00WAVE", b"plain text pretending to be audio\n" * 50, bytes(range(256)) * 40],
)
def test_undecodable_input_is_a_permanent_error(payload: bytes) -> None:
    with pytest.raises(AudioDecodeError, match="not decodable audio"):
        audio.decode(payload)


def test_truncated_flac_is_an_error_or_shorter(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(JFK.read_bytes()[:200])
    with pytest.raises(AudioDecodeError):
        audio.decode(truncated)
