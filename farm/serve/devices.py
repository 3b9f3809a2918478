"""Which devices a host offers, found without importing torch or starting CUDA."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from farm.constants import CPU_QUEUE, SHARED_QUEUE, gpu_queue
from farm.errors import ConfigError

PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


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


def this_device(kind: str) -> Device:
    """The device of a worker process started on its own, numbered as nvidia-smi numbers it."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    if kind == "cpu" or not visible.isdigit():
        return CPU
    return Device(f"gpu{visible}", int(visible))


def visible_gpus() -> list[int]:
    return [gpu.index for gpu in gpu_inventory()]


def cpu_workers_for(setting: int) -> int:
    """The ``cpu_workers`` setting, with 0 meaning one process per usable CPU.

    Not one per ``cpu_threads`` CPUs: a process's extra threads are for the cores its idle
    siblings leave, so a lone job runs faster and a full farm loses nothing (2 cores, 2
    processes x 2 threads against 2 x 1: 1.24x one job at a time, 1.08x all at once;
    docs/benchmarks.md).
    """
    return setting or usable_cpus()


def usable_cpus(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may use: its affinity, capped by its cgroup's CPU quota (a pod's CPU limit).

    ``os.cpu_count()`` is the node's cores: a pod limited to 2 CPUs on a 64-core node would
    start 64 workers, each loading the model, and be throttled.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(proc_cgroup, root)
    return cpus if quota is None else max(1, min(cpus, math.floor(quota)))


def cgroup_cpu_quota(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """The tightest CPU quota (in CPUs) of this process's cgroup, v2 ``cpu.max`` or v1 CFS; None: no limit."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = [q for line in lines if line.count(":") >= 2 for q in _quotas(line, root)]
    return min(quotas, default=None)


def _quotas(line: str, root: Path) -> list[float]:
    _, controllers, path = line.split(":", 2)
    relative = path.lstrip("/")
    if not controllers:  # cgroup v2: one hierarchy; inside a cgroup namespace the path is "/"
        files = [root / relative / "cpu.max", root / "cpu.max", root / "unified" / relative / "cpu.max"]
        return [q for q in map(_v2_quota, files) if q is not None]
    if "cpu" not in controllers.split(","):
        return []
    folders = [root / name / relative for name in (controllers, "cpu")] + [root / controllers, root / "cpu"]
    return [q for q in map(_v1_quota, folders) if q is not None]


def _v2_quota(path: Path) -> float | None:
    try:
        quota, _, period = path.read_text().strip().partition(" ")
    except OSError:
        return None
    return None if quota == "max" else int(quota) / int(period or 100_000)


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


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
# On CPUs a batch of padded windows costs what the windows cost one by one (2 cores,
# docs/gpu.md), so the CPU keeps one window per call.
CPU_BATCH_SIZE = 1
MAX_AUTO_BATCH = 32


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
    weights = model_weights_mb(model)
    per_job = max(256.0, weights / 2)
    fits = int((0.9 * free_mb(device, gpus) - weights) // per_job)
    return max(1, min(MAX_AUTO_CONCURRENCY, fits))


def free_mb(device: Device, gpus: list[Gpu]) -> float:
    return next((g.free_mb for g in gpus if g.index == device.cuda_index), 0.0)


def window_mb(model: str, beam_size: int) -> float:
    """GPU memory one 30 s window of a batch takes while it is decoded, per beam.

    Per layer, the decoder keeps cross-attention keys and values for 1500 encoder frames
    and self-attention ones for up to 448 tokens; with the encoder's activations that is
    about an eighth of the fp16 weights (large-v3: 245 + 73 MiB of caches, ~390 MiB).
    """
    return max(64.0, model_weights_mb(model) / 8) * max(beam_size, 1)


def auto_batch_size(device: Device, model: str, gpus: list[Gpu], beam_size: int = 1) -> int:
    """Windows per engine call: what fits beside the weights in 80 % of the free memory.

    An estimate: a batch that still runs out of memory is halved and retried
    (farm.inference.batching), so erring high costs one retry, not a job.
    """
    if device.cuda_index is None:
        return CPU_BATCH_SIZE
    fits = int((0.8 * free_mb(device, gpus) - model_weights_mb(model)) // window_mb(model, beam_size))
    return max(1, min(MAX_AUTO_BATCH, fits))


@dataclass(frozen=True)
class Sizing:
    """How many jobs and windows per call one device's worker takes, and why."""

    device: str
    concurrency: int
    batch_size: int
    reason: str

    def describe(self) -> str:
        return f"{self.device}: concurrency {self.concurrency}, batch_size {self.batch_size} ({self.reason})"


def size_device(
    device: Device, model: str, gpus: list[Gpu], concurrency: int, batch_size: int, beam_size: int
) -> Sizing:
    """Resolve the ``concurrency`` and ``batch_size`` settings (0: automatic) for ``device``."""
    batch = batch_size or auto_batch_size(device, model, gpus, beam_size)
    # A GPU's batch can only fill with as many jobs in hand as it has windows.
    automatic = max(auto_concurrency(device, model, gpus), batch if device.cuda_index is not None else 0)
    return Sizing(device.name, concurrency or automatic, batch, _reason(device, model, gpus, concurrency, batch_size))


def _reason(device: Device, model: str, gpus: list[Gpu], concurrency: int, batch_size: int) -> str:
    chosen = [name for name, value in (("concurrency", concurrency), ("batch_size", batch_size)) if not value]
    if not chosen:
        return "both set"
    if device.cuda_index is None:
        return f"{' and '.join(chosen)} automatic: CPU defaults"
    return (
        f"{' and '.join(chosen)} automatic: {free_mb(device, gpus):,.0f} MiB free, "
        f"~{model_weights_mb(model):,.0f} MiB of fp16 weights for {model}"
    )
