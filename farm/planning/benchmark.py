"""``farm bench``: measure the farm on this hardware and write a JSON report.

Each combination of engine, model, devices, precision, batch size and concurrency runs
as a real farm (a private Redis and ``farm worker`` processes started with those
settings), is warmed up, then gets the whole audio set at once. The report records
xRT (audio seconds per wall second), WER when references are given, and peak memory;
the capacity planner reads it.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from farm.client import Client
from farm.config import Settings
from farm.constants import AUDIO_SUFFIXES
from farm.errors import InvalidJobError
from farm.serve.embedded import local_farm
from farm.serve.memory import PeakMemory


@dataclass(frozen=True)
class Combo:
    """One farm shape to measure; each field maps to a setting of the same name."""

    engine: str = "ctranslate2"
    model: str = "tiny.en"
    devices: str = "auto"
    compute_type: str = "default"
    beam_size: int = 5
    batch_size: int = 1
    concurrency: int = 4
    cpu_workers: int = 1
    cpu_threads: int = 0
    pool: str = "threads"
    pack: bool = True

    def env(self) -> dict[str, str]:
        values = asdict(self) | {"pack": "true" if self.pack else "false"}
        return {f"FARM_{key.upper()}": str(value) for key, value in values.items()}

    @property
    def processes(self) -> int:
        from farm.serve.devices import cpu_workers_for

        return cpu_workers_for(self.cpu_workers) if self.devices == "cpu" else 1


@dataclass(frozen=True)
class Measurement:
    name: str
    engine: str
    model: str
    device: str
    compute_type: str
    beam_size: int
    batch_size: int
    concurrency: int
    pack: bool
    processes: int
    cpu_threads: int
    audio_s: float
    wall_s: float
    xrt: float
    wer: float | None
    peak_rss_mb: float
    peak_vram_mb: float | None
    texts: list[str]


@dataclass(frozen=True)
class AudioSet:
    files: list[Path]
    durations: list[float]
    references: list[str] | None  # one per file when known

    @property
    def seconds(self) -> float:
        return sum(self.durations)


def combos(grid: Mapping[str, Sequence[Any]]) -> list[Combo]:
    """Every combination of the values given per field (the cartesian product)."""
    keys = list(grid)
    return [Combo(**dict(zip(keys, values, strict=True))) for values in itertools.product(*grid.values())]


def measure(
    combo: Combo,
    audio: AudioSet,
    settings: Settings,
    options: Mapping[str, Any] | None = None,
    warm_up: Path | None = None,
) -> Measurement:
    """Run ``audio`` through a fresh farm of shape ``combo``; ``options`` go with every job.

    Every job slot first runs ``warm_up`` (default: the first file) untimed.
    """
    job_options = {"beam_size": combo.beam_size, **(options or {})}
    with private_farm(combo, settings) as (client, worker_pid):
        _warm_up(client, warm_up or audio.files[0], combo, job_options)
        peak = PeakMemory(worker_pid)
        started = time.perf_counter()
        jobs = client.submit_many(audio.files, **job_options)
        texts = [job.result(timeout=3600)["text"] for job in jobs]
        wall = time.perf_counter() - started
        peak.stop()
    return _measurement(combo, audio, texts, wall, peak)


def _measurement(combo: Combo, audio: AudioSet, texts: list[str], wall: float, peak: PeakMemory) -> Measurement:
    return Measurement(
        name=f"{combo.engine}/{combo.model}/{combo.devices}/{combo.compute_type}/b{combo.batch_size}/c{combo.concurrency}"
        + ("" if combo.pack else "/unpacked"),
        engine=combo.engine,
        model=combo.model,
        device="cpu" if combo.devices == "cpu" else "auto",
        compute_type=combo.compute_type,
        beam_size=combo.beam_size,
        batch_size=combo.batch_size,
        concurrency=combo.concurrency,
        pack=combo.pack,
        processes=combo.processes,
        cpu_threads=combo.cpu_threads,
        audio_s=round(audio.seconds, 2),
        wall_s=round(wall, 3),
        xrt=round(audio.seconds / wall, 2),
        wer=None if audio.references is None else round(word_error_rate(audio.references, texts), 2),
        peak_rss_mb=round(peak.peak_rss_mb, 1),
        peak_vram_mb=peak.peak_vram_mb,
        texts=texts,
    )


@contextmanager
def private_farm(combo: Combo, settings: Settings) -> Iterator[tuple[Client, int]]:
    """A fresh farm of shape ``combo`` behind a private Redis: its client and worker pid."""
    with local_farm(settings, combo.env(), combo.processes) as farm:
        client = Client(farm.settings)
        try:
            yield client, farm.worker_pid
        finally:
            client.close()


def _warm_up(client: Client, first: Path, combo: Combo, options: Mapping[str, Any]) -> None:
    # Every job slot loads and runs the model once, so timing starts in the steady state.
    jobs = client.submit_many([first] * (combo.processes * combo.concurrency), **options)
    for job in jobs:
        job.result(timeout=600)


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """WER in percent after Whisper's English text normaliser (needs the worker extra)."""
    import jiwer
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    normalise = EnglishTextNormalizer({})  # type: ignore[no-untyped-call]
    return 100.0 * float(jiwer.wer([normalise(r) for r in references], [normalise(h) for h in hypotheses]))


def hardware() -> dict[str, Any]:
    from farm.serve.devices import gpu_inventory

    gpus = gpu_inventory()
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "gpu": gpus[0].name if gpus else None,
        "gpu_count": len(gpus),
        "gpu_memory_gb": round(gpus[0].memory_mb / 1024, 1) if gpus else None,
    }


def versions() -> dict[str, str]:
    names = ("whisperfarm", "celery", "faster-whisper", "ctranslate2", "transformers", "torch")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found | {"python": platform.python_version()}


def report(measurements: list[Measurement], audio: AudioSet) -> dict[str, Any]:
    results = [{k: v for k, v in asdict(m).items() if k != "texts"} for m in measurements]
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hardware": hardware(),
        "versions": versions(),
        "audio": {"files": len(audio.files), "seconds": round(audio.seconds, 2)},
        "results": results,
    }


def write_report(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def audio_set(paths: Sequence[Path], manifest: Path | None = None) -> AudioSet:
    """Files (directories expand to the audio inside), their lengths and references."""
    from farm.inference import audio

    files = sorted(f for p in paths for f in _expand(p))
    if not files:
        raise InvalidJobError(f"no audio files in {', '.join(str(p) for p in paths)}")
    durations = [audio.duration(audio.decode(f)) for f in files]
    return AudioSet(files, durations, _references(files, manifest) if manifest else None)


def _expand(path: Path) -> list[Path]:
    if path.is_dir():
        return [f.resolve() for f in path.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES]
    return [path.resolve()]


def _references(files: list[Path], manifest: Path) -> list[str]:
    """References from a JSON-lines manifest of {"path", "reference"} (paths relative to it)."""
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    known = {(manifest.parent / row["path"]).resolve(): str(row["reference"]) for row in rows}
    missing = [f.name for f in files if f not in known]
    if missing:
        raise InvalidJobError(f"no reference in {manifest} for {', '.join(missing[:5])}")
    return [known[f] for f in files]
