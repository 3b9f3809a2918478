"""Peak memory of a process tree (RSS) and of the GPUs (VRAM), sampled in the background."""

from __future__ import annotations

import shutil
import subprocess
import threading


class PeakMemory:
    """Samples the RSS of ``pid`` and its children, and used VRAM, until ``stop``."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self._interval = interval_s
        self.peak_rss = 0
        self.peak_vram_mb: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._done.wait(self._interval):
            try:
                tree = [self._process, *self._process.children(recursive=True)]
                self.peak_rss = max(self.peak_rss, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                return
            vram = used_vram_mb()
            if vram is not None:
                self.peak_vram_mb = max(self.peak_vram_mb or 0.0, vram)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss / 2**20


def used_vram_mb() -> float | None:
    """Memory in use on all visible GPUs, from nvidia-smi; None without a GPU."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout  # fmt: skip
    except (subprocess.SubprocessError, OSError):
        return None
    values = [float(v) for v in out.split() if v.replace(".", "", 1).isdigit()]
    return sum(values) if values else None
