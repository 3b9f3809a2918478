"""Which devices a host offers, found without importing torch or starting CUDA."""

from __future__ import annotations

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


def visible_gpus() -> list[int]:
    """Indexes nvidia-smi reports; none when the tool or the driver is missing."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
    except (subprocess.SubprocessError, OSError):
        return []
    return [int(line) for line in out.split() if line.strip().isdigit()]


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
