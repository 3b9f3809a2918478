"""The one log-mel front end every engine is fed from.

faster-whisper pads the *mel* with zeros up to 3000 frames while transformers pads the
*audio* to 30 s before the STFT; the two give slightly different encoder inputs. Both
engines take features from here (faster-whisper's way) so their outputs can be compared.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from farm.inference.engines.mel import log_mel_spectrogram

N_FRAMES = 3000  # 30 s at 10 ms hops: the fixed window Whisper's encoder takes
HOP_LENGTH = 160

Features = npt.NDArray[np.float32]


def log_mel_frames(audio: npt.NDArray[np.float32], n_mels: int = 80) -> Features:
    """Log-mel spectrogram of the whole of ``audio``: (n_mels, about len(audio) / 160)."""
    mel = log_mel_spectrogram(np.asarray(audio, dtype=np.float32), n_mels, HOP_LENGTH)
    return np.ascontiguousarray(mel, dtype=np.float32)


def pad_or_trim(mel: Features, frames: int = N_FRAMES) -> Features:
    """Cut ``mel`` to ``frames`` columns or pad it with zeros on the right."""
    if mel.shape[-1] >= frames:
        return np.ascontiguousarray(mel[..., :frames])
    padding = [(0, 0)] * (mel.ndim - 1) + [(0, frames - mel.shape[-1])]
    return np.pad(mel, padding)


def log_mel(audio: npt.NDArray[np.float32], n_mels: int = 80) -> Features:
    """Log-mel features of 16 kHz mono ``audio`` as one (n_mels, 3000) encoder window."""
    # the whole clip, then cut, as faster-whisper does: its dynamic-range clamp (max - 8 dB)
    # is taken over all of the audio, so cutting first would change the numbers
    return pad_or_trim(log_mel_frames(audio, n_mels))
