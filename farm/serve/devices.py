"""Which devices a host offers, found without importing torch or starting CUDA."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from farm.constants import CPU_QUEUE, SHARED_QUEUE, gpu_queue
from farm.errors import ConfigError


@dataclass(frozen=True)
class Device:
    """One worker process's device: its queue, node name and CUDA index (None: CPU)."""

    name: str  # "cpu", "gpu0", "gpu1", ...
    cuda_index: int | None

    @property
    def queues(self) -> tuple[str, str]:
        own = CPU_QUEUE if self.cuda_index is None else gpu_queue(self.cuda_index)
        return own, SHARED_QUEUE


CPU = Device("cpu", None)


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mb: float
    free_mb: float


def gpu_inventory() -> list[Gpu]:
    """The GPUs nvidia-smi reports; none when the tool or the driver is missing."""
    if shutil.which("nvidia-smi") is None:
        return []
    query = "--query-gpu=index,name,memory.total,memory.free"
    try:
        out = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [_gpu(line) for line in out.splitlines() if line.count(",") == 3]


def _gpu(line: str) -> Gpu:
    index, name, total, free = (part.strip() for part in line.split(","))
    return Gpu(int(index), name, float(total), float(free))


def visible_gpus() -> list[int]:
    return [gpu.index for gpu in gpu_inventory()]


def cpu_workers_for(setting: int, threads: int) -> int:
    """The ``cpu_workers`` setting, with 0 meaning one process per ``threads`` cores."""
    return setting or max(1, (os.cpu_count() or 1) // max(threads, 1))


def cpu_devices(workers: int) -> list[Device]:
    """One CPU worker is "cpu"; several are "cpu0", "cpu1", ... sharing farm.cpu."""
    if workers == 1:
        return [CPU]
    return [Device(f"cpu{i}", None) for i in range(workers)]


def select_devices(spec: str, cpu_workers: int = 1) -> list[Device]:
    """Turn the ``devices`` setting ("auto", "cpu", "0,1") into worker devices."""
    spec = spec.strip().lower()
    if spec == "cpu":
        return cpu_devices(cpu_workers)
    if spec == "auto":
        return [Device(f"gpu{i}", i) for i in visible_gpus()] or cpu_devices(cpu_workers)
    try:
        indexes = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"devices: expected 'auto', 'cpu' or GPU indexes like '0,1', not {spec!r}") from None
    return [Device(f"gpu{i}", i) for i in indexes]


# Float16 weights of each Whisper size in MiB (parameters x 2 bytes), for sizing GPUs.
MODEL_WEIGHTS_MB = {"tiny": 78, "base": 148, "small": 488, "medium": 1540, "large": 3100, "turbo": 1620}
CPU_CONCURRENCY = 4
MAX_AUTO_CONCURRENCY = 16


def model_weights_mb(model: str) -> float:
    """A size estimate from the model's name; unknown names are assumed large."""
    name = model.lower().rsplit("/", 1)[-1]
    for size, megabytes in MODEL_WEIGHTS_MB.items():
        if size in name:
            return megabytes
    return MODEL_WEIGHTS_MB["large"]


def auto_concurrency(device: Device, model: str, gpus: list[Gpu]) -> int:
    """Jobs a device can hold: one model per process, then room for each job's activations.

    A job in flight holds its decoded audio, mel features and decoder caches; about half
    the weights' size (at least 256 MiB) is a safe budget for one 30 s window.
    """
    if device.cuda_index is None:
        return CPU_CONCURRENCY
    free = next((g.free_mb for g in gpus if g.index == device.cuda_index), 0.0)
    weights = model_weights_mb(model)
    per_job = max(256.0, weights / 2)
    fits = int((0.9 * free - weights) // per_job)
    return max(1, min(MAX_AUTO_CONCURRENCY, fits))
