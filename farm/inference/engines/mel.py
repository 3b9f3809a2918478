"""Whisper's log-mel spectrogram in numpy: the same numbers as faster-whisper's extractor.

Kept here (after faster-whisper's ``feature_extractor.py``, MIT) so that the transformers
engine needs neither faster-whisper nor CTranslate2: the air-gapped GPU host has torch
and transformers only. ``tests/engines/test_features.py`` checks the two agree exactly.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

N_FFT = 400
_MAX_MEL = 45.245640471924965  # the mel of 8 kHz on the Slaney scale

Floats = npt.NDArray[np.float32]


@lru_cache(maxsize=4)
def mel_filters(n_mels: int, sampling_rate: int = 16000, n_fft: int = N_FFT) -> Floats:
    """Slaney-style mel filter bank, (n_mels, n_fft // 2 + 1), as librosa builds it."""
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sampling_rate)
    freqs = _mel_to_hz(np.linspace(0.0, _MAX_MEL, n_mels + 2))
    ramps = freqs.reshape(-1, 1) - fft_freqs.reshape(1, -1)
    spacing = np.diff(freqs)
    lower = -ramps[:-2] / np.expand_dims(spacing[:-1], axis=1)
    upper = ramps[2:] / np.expand_dims(spacing[1:], axis=1)
    weights = np.maximum(np.zeros_like(lower), np.minimum(lower, upper))
    weights *= np.expand_dims(2.0 / (freqs[2 : n_mels + 2] - freqs[:n_mels]), axis=1)
    return weights.astype(np.float32)


def _mel_to_hz(mels: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    step = 200.0 / 3  # linear below 1 kHz, logarithmic above
    freqs = step * mels
    min_log_mel = 1000.0 / step
    log = mels >= min_log_mel
    freqs[log] = 1000.0 * np.exp(np.log(6.4) / 27.0 * (mels[log] - min_log_mel))
    return freqs


def log_mel_spectrogram(audio: Floats, n_mels: int, hop_length: int = 160, padding: int = 160) -> Floats:
    """(n_mels, frames) log-mel of 16 kHz mono ``audio``, clamped 8 dB under its peak."""
    waveform = np.pad(np.asarray(audio, dtype=np.float32), (0, padding)) if padding else audio
    magnitudes = np.abs(_stft(waveform, hop_length)[..., :-1]) ** 2
    log_spec = np.log10(np.clip(mel_filters(n_mels) @ magnitudes, a_min=1e-10, a_max=None))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return np.asarray((log_spec + 4.0) / 4.0, dtype=np.float32)


def _stft(waveform: Floats, hop_length: int) -> npt.NDArray[np.complex64]:
    """Centred (reflect-padded) short-time Fourier transform with a periodic Hann window."""
    padded = np.pad(waveform[None, :], ((0, 0), (N_FFT // 2, N_FFT // 2)), mode="reflect")
    frames = 1 + (padded.shape[1] - N_FFT) // hop_length
    strided = np.lib.stride_tricks.as_strided(
        padded, (1, frames, N_FFT), (padded.strides[0], hop_length * padded.strides[1], padded.strides[1])
    )
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    spectrum = np.fft.rfft(strided * window, n=N_FFT, axis=-1).transpose((0, 2, 1))
    return np.asarray(spectrum[0], dtype=np.complex64)
