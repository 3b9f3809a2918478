"""``farm worker``: one Celery worker process per device, supervised.

Each GPU gets its own process pinned with ``CUDA_VISIBLE_DEVICES``, its own queue
(``farm.gpuN``) plus the shared queue, and its own node name; without GPUs one CPU
worker serves ``farm.cpu``. SIGTERM/SIGINT are forwarded so running jobs finish
(Celery's warm shutdown). A child that dies on its own has its unacknowledged jobs put
back on their queues at once (``farm.queue.recovery``) and is restarted with a backoff,
at most ``RestartPolicy.max_restarts`` times within its window; each death is logged
with its cause (exit code or signal).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from farm.config import Settings
from farm.queue.connections import RedisSettings
from farm.queue.recovery import owner_name, reclaim
from farm.serve import liveness
from farm.serve.devices import Device, Gpu, Sizing, cpu_workers_for, gpu_inventory, select_devices, size_device
from farm.serve.restarts import RestartPolicy, RestartRecord, exit_cause

log = logging.getLogger(__name__)

TICK_S = 0.2  # how often the supervisor looks at its children
MALLOC_SETTINGS = {"MALLOC_ARENA_MAX": "2"}


@dataclass
class Child:
    device: Device
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    record: RestartRecord = field(default_factory=RestartRecord)
    started_at: float = 0.0
    restart_at: float | None = None  # when a dead child is due to start again
    gave_up: bool = False

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env)
        self.started_at, self.restart_at = time.monotonic(), None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def node(self) -> str:
        """The Celery node name the process answers to, e.g. ``cpu0@host``."""
        return self.argv[self.argv.index("--hostname") + 1]


def resolved_concurrency(settings: Settings, device: Device, gpus: list[Gpu] | None = None) -> int:
    """The device's own value, else the farm's, else (0) what fits the device."""
    return sizing(settings, device, gpus).concurrency


def sizing(settings: Settings, device: Device, gpus: list[Gpu] | None = None) -> Sizing:
    """Concurrency and batch size for ``device``, 0 settings resolved from its free memory."""
    concurrency = settings.concurrency_for(device.name)
    return size_device(device, settings.model, gpus or [], concurrency, settings.batch_size, settings.beam_size)


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


def worker_env(
    device: Device, concurrency: int, base: dict[str, str] | None = None, batch_size: int | None = None
) -> dict[str, str]:
    """The child's environment: its device, the concurrency its batcher gathers jobs up to
    and (when resolved here) its windows per engine call."""
    env = dict(os.environ if base is None else base)
    env["FARM_CONCURRENCY"] = str(concurrency)
    if batch_size is not None:
        env["FARM_BATCH_SIZE"] = str(batch_size)
    # glibc keeps an arena per allocating thread (up to 8 per core) and serves big buffers
    # (audio, features) from them, seldom handing the pages back: the worker tree grew 24 %
    # over 300 jobs. Two arenas, and the batcher trims the heap after every round
    # (farm/inference/heap.py; docs/reliability.md, bench/memory.py). An operator's values win.
    for key, value in MALLOC_SETTINGS.items():
        env.setdefault(key, value)
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
    devices = select_devices(settings.devices, cpu_workers_for(settings.cpu_workers))
    return [_child(settings, d, host, gpus) for d in devices]


def _child(settings: Settings, device: Device, hostname: str, gpus: list[Gpu]) -> Child:
    size = sizing(settings, device, gpus)
    log.info("sizing %s", size.describe())  # the start banner's record of what was picked
    env = worker_env(device, size.concurrency, batch_size=size.batch_size)
    return Child(device, worker_argv(settings, device, hostname, gpus), env)


# Called with the pid of a child that died, before it is restarted.
OnDeath = Callable[[int], None]


class Supervisor:
    """Starts the children, restarts dead ones (within ``policy``), and forwards shutdown signals."""

    def __init__(self, children: list[Child], policy: RestartPolicy | None = None, on_death: OnDeath | None = None):
        self.children = children
        self.stopping = False
        self.on_death = on_death
        for child in children:
            child.record = RestartRecord(policy or RestartPolicy())

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        for child in self.children:
            child.start()
        plan = liveness.write_plan([child.node for child in self.children])
        try:
            while not self._finished():
                for child in self.children:
                    self._tend(child, time.monotonic())
                liveness.beat(plan)  # `farm probe live` reads it: the supervisor's loop still turns
                time.sleep(TICK_S)
        finally:
            liveness.remove_plan()
        if any(c.gave_up for c in self.children):
            return 1
        return max((c.process.returncode or 0) if c.process else 0 for c in self.children)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for child in self.children:
            if child.alive() and child.process is not None:
                child.process.send_signal(signal.SIGTERM)

    def _finished(self) -> bool:
        if self.stopping:
            return not any(c.alive() for c in self.children)
        return all(c.gave_up for c in self.children)

    def _tend(self, child: Child, now: float) -> None:
        if self.stopping or child.gave_up or child.alive():
            return
        if child.restart_at is None:
            self._buried(child, now)
        elif now >= child.restart_at:
            child.start()
            log.info("worker %s restarted (pid %s)", child.device.name, child.process and child.process.pid)

    def _buried(self, child: Child, now: float) -> None:
        assert child.process is not None
        pid, cause = child.process.pid, exit_cause(child.process.returncode)
        if self.on_death is not None:
            self.on_death(pid)
        delay = child.record.next_delay(now, now - child.started_at)
        window = f"{len(child.record.times)} in {child.record.policy.window_s:.0f} s"
        if delay is None:
            child.gave_up = True
            log.error("worker %s (pid %d) %s; giving up: restarted %s", child.device.name, pid, cause, window)
            return
        child.restart_at = now + delay
        uptime = now - child.started_at
        log.warning(
            "worker %s (pid %d) %s after %.0f s; restarting in %.0f s (restarts: %s)",
            child.device.name, pid, cause, uptime, delay, window,
        )  # fmt: skip


def reclaimer(settings: Settings) -> OnDeath:
    """Return a dead child's unacknowledged jobs to their queues at once (farm.queue.recovery)."""
    broker = RedisSettings.from_settings(settings)
    results = RedisSettings.from_settings(settings, settings.result_backend)

    def on_death(pid: int) -> None:
        try:
            done = reclaim(broker, results, owner_name(pid=pid))
        except Exception as exc:  # Redis away: kombu's visibility_timeout sweep returns them later
            log.warning("could not return the jobs of worker pid %d: %s: %s", pid, type(exc).__name__, exc)
            return
        if done.requeued or done.finished:
            log.warning("returned %d job(s) of worker pid %d to their queues: %s; %d had already finished",
                        len(done.requeued), pid, ", ".join(done.requeued), len(done.finished))  # fmt: skip

    return on_death


def run_workers(settings: Settings) -> int:
    logging.basicConfig(level=settings.log_level, format="[%(asctime)s: %(levelname)s/supervisor] %(message)s")
    return Supervisor(plan(settings), on_death=reclaimer(settings)).run()
