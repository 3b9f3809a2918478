"""Whisper throughput per GPU type, each row with where it came from, for ``farm capacity``.

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

_IFW = (
    "insanely-fast-whisper README benchmark table (github.com/Vaibhavs10/insanely-fast-whisper; "
    "captioned A100 80GB since its commit 44c462b)"
)
_INFERENCEBENCH = "https://inferencebench.io/blog/whisper-large-v3-turbo-597x-realtime-asr-benchmark/"
_LEADERBOARD = (
    "Open ASR Leaderboard evaluations, faster-whisper rows on CUDA "
    "(huggingface.co/datasets/Steveeeeeeen/whisper-leaderboard-evals, 24_jan_25.csv)"
)


@dataclass(frozen=True)
class Published:
    """A figure someone else published: where, and what was actually measured there."""

    source: str
    measured: str

    def describe(self) -> str:
        return f"published: {self.source}; measured there: {self.measured}"


@dataclass(frozen=True)
class Measured:
    """A figure from our own ``bench/gpu_check.py`` run (docs/gpu.md)."""

    date: str
    gpu: str
    shape: str
    tokens_per_window: int | None  # None: real weights and real speech; else synthetic weights
    batch: int
    report: str

    def describe(self) -> str:
        weights = (
            "real weights"
            if self.tokens_per_window is None
            else f"synthetic weights, {self.tokens_per_window} tokens/window"
        )
        return f"measured {self.date} on {self.gpu}: {self.shape} shape, {weights}, batch {self.batch} ({self.report})"


@dataclass(frozen=True)
class GpuThroughput:
    """One throughput figure for a model on a GPU type, with where it came from."""

    gpu: str
    model: str
    xrt: float
    setup: str  # engine, precision, batch: what produced the figure
    origin: Published | Measured
    estimate: bool = False
    anchor: bool = False  # the GPU's reference row that other models are scaled from

    @property
    def source(self) -> str:
        return self.origin.describe()


# Only rows whose GPU the source names. insanely-fast-whisper's 5 min 2 s (large-v2) and
# 3 min 16 s (distil-large-v2) rows were once read here as T4 runs; its authors recaptioned
# that table as A100 80GB runs (commit 44c462b), where they are the older BetterTransformer
# path, slower than the Flash Attention 2 rows kept below. No published T4 or P100 figure is
# left, so neither GPU is in the table (an earlier P100 row was a guess: T4 x 1.15): measure
# them with `farm bench` and plan with `--bench`.
PUBLISHED_THROUGHPUT: tuple[GpuThroughput, ...] = (
    GpuThroughput(
        "A100", "large-v3", round(150 * 60 / 98, 1),  # 1 min 38 s -> 91.8
        "transformers fp16, batch 24, Flash Attention 2",
        Published(_IFW, "150 min of audio transcribed in 1 min 38 s (whole-pipeline wall time)"), anchor=True,
    ),
    GpuThroughput(
        "A100", "distil-large-v2", round(150 * 60 / 78, 1),  # 1 min 18 s -> 115.4
        "transformers fp16, batch 24, Flash Attention 2",
        Published(_IFW, "150 min of audio transcribed in 1 min 18 s"),
    ),
    GpuThroughput(
        "H100", "large-v3-turbo", 404.0,  # 597x is the peak; 404x is sustained at batch 32
        "transformers fp16, batch 32 (H100 SXM)",
        Published(_INFERENCEBENCH, "404x real time sustained at batch 32 (597x at its best point)"), anchor=True,
    ),
)  # fmt: skip

# Rows from our own GPU check (bench/gpu_check.py, docs/gpu.md). None yet: no GPU run has
# been made, and a figure no run produced is never written here.
MEASURED_THROUGHPUT: tuple[GpuThroughput, ...] = ()

GPU_THROUGHPUT = MEASURED_THROUGHPUT + PUBLISHED_THROUGHPUT
GPU_TYPES = tuple(dict.fromkeys(row.gpu for row in GPU_THROUGHPUT))

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
