"""What audio is inside a worker: 16 kHz mono float32 samples, as every stage takes them.

Decoding, VAD, packing, batching and the engines all share this one definition, so none
of them depends on another for it (numpy only).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000  # Whisper's input rate; decoding resamples everything to it
Audio = npt.NDArray[np.float32]
