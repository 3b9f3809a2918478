"""Published Whisper throughput per GPU type, with sources, for ``farm capacity``.

Figures are ×RT: seconds of audio one GPU transcribes per second of wall time. They come
from different public benchmarks (different audio, software and settings), so they are
planning numbers, not promises: a ``farm bench`` report from your own hardware and audio
always beats them (``farm capacity --bench report.json``).

How the table is used: a row for exactly the GPU and model asked for wins; otherwise the
GPU's anchor row (its best published figure) is scaled to the model by the ratio of the
models' relative speeds in ``MODEL_SPEED``, and the answer is marked as an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

GPU_TYPES = ("T4", "P100", "A100", "H100")

_IFW = "https://github.com/Vaibhavs10/insanely-fast-whisper (README benchmark table)"
_IFW_T4 = f"{_IFW}, Google Colab T4, 150 min of audio"
_IFW_A100 = f"{_IFW}, A100 80GB, 150 min of audio"
_INFERENCEBENCH = "https://inferencebench.io/blog/whisper-large-v3-turbo-597x-realtime-asr-benchmark/"
_LEADERBOARD = (
    "Open ASR Leaderboard evaluations, faster-whisper rows on CUDA "
    "(huggingface.co/datasets/Steveeeeeeen/whisper-leaderboard-evals, 24_jan_25.csv)"
)


@dataclass(frozen=True)
class GpuThroughput:
    """One published (or derived) throughput figure for a model on a GPU type."""

    gpu: str
    model: str
    xrt: float
    setup: str  # engine, precision, batch: what produced the figure
    source: str
    estimate: bool = False
    anchor: bool = False  # the GPU's reference row that other models are scaled from


GPU_THROUGHPUT: tuple[GpuThroughput, ...] = (
    GpuThroughput(
        "T4", "large-v2", round(150 * 60 / 302, 1),  # 5 min 2 s -> 29.8
        "transformers fp16, batch 24, BetterTransformer", _IFW_T4, anchor=True,
    ),
    GpuThroughput(
        "T4", "distil-large-v2", round(150 * 60 / 196, 1),  # 3 min 16 s -> 45.9
        "transformers fp16, batch 24, BetterTransformer", _IFW_T4,
    ),
    # No readable P100 figure was found. ML6's benchmark ("Whisper Deployment Decisions",
    # 2023) reports the P100 faster than the T4 at batch sizes above 1 but gives no number
    # we can cite. The P100 has 2.29x the T4's memory bandwidth (732 vs 320 GB/s) and no
    # tensor cores; we take half that ratio (1.15) over the T4's figure.
    GpuThroughput(
        "P100", "large-v2", round(150 * 60 / 302 * 1.15, 1),  # 34.3
        "estimate: T4 figure x 1.15 (half the memory-bandwidth ratio)",
        "derived from the T4 row; ML6 blog (2023) for the ordering", estimate=True, anchor=True,
    ),
    GpuThroughput(
        "A100", "large-v3", round(150 * 60 / 98, 1),  # 1 min 38 s -> 91.8
        "transformers fp16, batch 24, Flash Attention 2", _IFW_A100, anchor=True,
    ),
    GpuThroughput(
        "A100", "distil-large-v2", round(150 * 60 / 78, 1),  # 1 min 18 s -> 115.4
        "transformers fp16, batch 24, Flash Attention 2", _IFW_A100,
    ),
    GpuThroughput(
        "H100", "large-v3-turbo", 404.0,  # 597x is the peak; 404x is sustained at batch 32
        "transformers fp16, batch 32 (H100 SXM)", _INFERENCEBENCH, anchor=True,
    ),
)  # fmt: skip

# Relative speed of each model with one engine on one GPU (faster-whisper RTFx from the
# same leaderboard run), used only as ratios between models. The multilingual tiny, base,
# small and medium share their architecture with the .en models and take their figure.
# These batch-1 ratios compress the range (tiny is only ~2.6x large-v3), which errs on
# the side of more GPUs for small models; parameter counts would claim ~40x.
MODEL_SPEED: dict[str, float] = {
    "tiny": 49.44,
    "tiny.en": 49.44,
    "base": 38.92,
    "base.en": 38.92,
    "small": 34.31,
    "small.en": 34.31,
    "medium": 24.48,
    "medium.en": 24.48,
    "large-v1": 18.54,
    "large-v2": 16.47,
    "large-v3": 19.13,
    "large-v3-turbo": 39.54,
    "distil-small.en": 49.92,
    "distil-medium.en": 50.96,
    "distil-large-v2": 42.56,
    "distil-large-v3": 43.62,
}
MODEL_SPEED_SOURCE = _LEADERBOARD

MODEL_ALIASES: dict[str, str] = {"large": "large-v3", "turbo": "large-v3-turbo"}

# Redis sizing. Jobs carry references (paths, s3:// URIs), so a queued Celery message is
# about 2 KiB with its headers. A verbose_json result holds the text twice (full text and
# segments) plus per-segment timing: at ~150 spoken words a minute that is ~9,000 words,
# ~55 KB of text, per audio hour, so ~256 KiB with segment metadata. Redis needs about
# twice the data size for per-key overhead, fragmentation and the copy-on-write pages of
# a background save.
MESSAGE_BYTES = 2 * 1024
RESULT_META_BYTES = 1024
RESULT_BYTES_PER_AUDIO_HOUR = 256 * 1024
REDIS_OVERHEAD = 2.0
REDIS_MIN_MAXMEMORY_MB = 256
