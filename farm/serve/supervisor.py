"""``farm worker``: one Celery worker process per device, supervised.

Each GPU gets its own process pinned with ``CUDA_VISIBLE_DEVICES``, its own queue
(``farm.gpuN``) plus the shared queue, and its own node name; without GPUs one CPU
worker serves ``farm.cpu``. SIGTERM/SIGINT are forwarded so running jobs finish
(Celery's warm shutdown); a child that dies on its own is restarted.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from farm.config import Settings
from farm.serve.devices import Device, Gpu, auto_concurrency, cpu_workers_for, gpu_inventory, select_devices

RESTART_DELAY_S = 2.0


@dataclass
class Child:
    device: Device
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def resolved_concurrency(settings: Settings, device: Device, gpus: list[Gpu] | None = None) -> int:
    """The device's own value, else the farm's, else (0) what fits the device."""
    return settings.concurrency_for(device.name) or auto_concurrency(device, settings.model, gpus or [])


def worker_argv(settings: Settings, device: Device, hostname: str, gpus: list[Gpu] | None = None) -> list[str]:
    concurrency = resolved_concurrency(settings, device, gpus)
    argv = [
        sys.executable, "-m", "celery", "-A", "tasks", "worker",
        "--queues", ",".join(device.queues),
        "--hostname", f"{device.name}@{hostname}",
        "--concurrency", str(concurrency),
        "--pool", settings.pool,
        "--loglevel", settings.log_level,
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if settings.max_tasks_per_child:
        argv += ["--max-tasks-per-child", str(settings.max_tasks_per_child)]
    return argv


def worker_env(device: Device, concurrency: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: its device, and the concurrency its batcher gathers jobs up to."""
    env = dict(os.environ if base is None else base)
    env["FARM_CONCURRENCY"] = str(concurrency)
    if device.cuda_index is None:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker must not grab a GPU by accident
        env["FARM_DEVICE"] = "cpu"
    else:
        env["CUDA_VISIBLE_DEVICES"] = str(device.cuda_index)
        env["FARM_DEVICE"] = "cuda"
    return env


def plan(settings: Settings, hostname: str | None = None) -> list[Child]:
    host = hostname or socket.gethostname()
    gpus = gpu_inventory()
    devices = select_devices(settings.devices, cpu_workers_for(settings.cpu_workers, settings.cpu_threads))
    return [_child(settings, d, host, gpus) for d in devices]


def _child(settings: Settings, device: Device, hostname: str, gpus: list[Gpu]) -> Child:
    concurrency = resolved_concurrency(settings, device, gpus)
    return Child(device, worker_argv(settings, device, hostname, gpus), worker_env(device, concurrency))


class Supervisor:
    """Starts the children, restarts crashed ones, and forwards shutdown signals."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        for child in self.children:
            child.start()
        while not self._all_exited():
            self._restart_crashed()
            time.sleep(0.5)
        return max((c.process.returncode or 0) if c.process else 0 for c in self.children)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for child in self.children:
            if child.alive() and child.process is not None:
                child.process.send_signal(signal.SIGTERM)

    def _all_exited(self) -> bool:
        if self.stopping:
            return not any(c.alive() for c in self.children)
        return all(c.process is not None and c.process.poll() is not None and c.restarts >= 5 for c in self.children)

    def _restart_crashed(self) -> None:
        for child in self.children:
            if not self.stopping and not child.alive() and child.restarts < 5:
                time.sleep(RESTART_DELAY_S)
                child.restarts += 1
                child.start()


def run_workers(settings: Settings) -> int:
    return Supervisor(plan(settings)).run()
