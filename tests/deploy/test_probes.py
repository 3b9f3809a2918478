"""The worker pod's rendered probes against a real `farm worker`, and the CPU count a pod gets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from farm.serve.liveness import STALE_S
from farm.serve.redis_server import RedisServer, start_redis
from tests.deploy.chart import PREFIX, container, find, render
from tests.deploy.conftest import ROOT
from tests.deploy.pods import Cluster, Pod, make_pod

CPU_GROUP = {"workers": {"groups": {"gpu": {"enabled": False}, "cpu": {"gpusPerPod": 0}}}}
# Two CPU worker processes, so the pod's nodes are cpu0@… and cpu1@…, as on any pod with 2+ cores.
ON_THIS_MACHINE = {"FARM_MODEL": "tiny.en", "FARM_CPU_WORKERS": "2", "FARM_CPU_THREADS": "1"}
START_S = 300.0


@dataclass
class WorkerPod:
    pod: Pod
    redis: RedisServer
    deployment: dict[str, Any]

    def probe(self, name: str) -> subprocess.CompletedProcess[str]:
        """The container's rendered probe ``name``, run in the pod as the kubelet would."""
        return self.pod.exec(container(self.deployment)[name]["exec"]["command"])

    def worker_process(self, node: str) -> psutil.Process:
        assert self.pod.process is not None
        children = psutil.Process(self.pod.process.pid).children()
        return next(p for p in children if any(arg.startswith(f"{node}@") for arg in p.cmdline()))


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(1.0)


@pytest.fixture()
def worker(helm_bin: Path, tmp_path: Path) -> Iterator[WorkerPod]:
    docs = render(helm_bin, tmp_path, CPU_GROUP)
    redis = start_redis()
    world = Cluster(docs, services={f"{PREFIX}-redis:6379": f"127.0.0.1:{redis.port}"})
    deployment = find(docs, "Deployment", f"{PREFIX}-worker-cpu")
    pod = make_pod(world, deployment, tmp_path / "worker", **ON_THIS_MACHINE).start()
    try:
        yield WorkerPod(pod, redis, deployment)
    finally:
        pod.stop()
        redis.stop()


@pytest.mark.slow
def test_probes_pass_on_a_running_worker_liveness_ignores_redis_and_fails_once_stopped(worker: WorkerPod) -> None:
    pod = worker.pod
    wait_until(lambda: worker.probe("startupProbe").returncode == 0, START_S, f"never started:\n{pod.output()}")
    live = worker.probe("livenessProbe")
    assert live.returncode == 0 and "cpu0@" in live.stdout and "cpu1@" in live.stdout, live
    assert worker.probe("readinessProbe").returncode == 0

    worker.redis.stop()  # an outage longer than a heartbeat's staleness: liveness stays green
    outage_ends = time.monotonic() + STALE_S + 10
    while time.monotonic() < outage_ends:
        assert worker.probe("livenessProbe").returncode == 0, pod.output()
        time.sleep(3)
    not_ready = worker.probe("readinessProbe")
    assert not_ready.returncode == 1 and "Traceback" not in not_ready.stderr, not_ready

    stuck = worker.worker_process("cpu1")
    stuck.suspend()  # a wedged worker process: alive to the kernel, silent to everyone
    try:
        wait_until(lambda: worker.probe("livenessProbe").returncode == 1, STALE_S + 30, "a stuck process passed")
        assert "cpu1@" in worker.probe("livenessProbe").stderr
    finally:
        stuck.resume()

    pod.stop()  # the container's /tmp goes with it; the probe of a fresh one finds no worker
    argv = [sys.executable, "-m", "farm.cli", "probe", "live"]
    dead = subprocess.run(argv, env=pod.env, cwd=pod.root / "app", capture_output=True, text=True, timeout=60)
    assert dead.returncode == 1 and "not running" in dead.stderr, dead


# --- cpu_workers = 0 in a pod with a CPU limit ---------------------------------------------

CPU_CGROUP = Path("/sys/fs/cgroup/cpu")


@pytest.fixture()
def one_cpu_cgroup() -> Iterator[Path]:
    """A real cgroup (v1 cpu controller) limited to one CPU, as a pod's `limits.cpu: 1` makes."""
    if os.geteuid() != 0 or not (CPU_CGROUP / "cgroup.procs").exists():
        pytest.fail("needs root and the cgroup v1 cpu controller at /sys/fs/cgroup/cpu")
    group = CPU_CGROUP / f"whisperfarm-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    (group / "cpu.cfs_period_us").write_text("100000")
    (group / "cpu.cfs_quota_us").write_text("100000")
    yield group
    group.rmdir()


def test_cpu_workers_zero_follows_the_cgroup_cpu_quota(one_cpu_cgroup: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    assert cores >= 2, "the check needs a machine with more cores than the quota"
    code = "from farm.serve.devices import cpu_workers_for; print(cpu_workers_for(0))"
    enter = f"echo $$ > {one_cpu_cgroup / 'cgroup.procs'} && exec {sys.executable} -c '{code}'"
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    limited = subprocess.run(["sh", "-c", enter], capture_output=True, text=True, env=env, timeout=60)
    free = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert (limited.stdout.strip(), free.stdout.strip()) == ("1", str(cores)), limited.stderr + free.stderr


def test_cgroup_v2_cpu_max_is_read(tmp_path: Path) -> None:
    from farm.serve.devices import cgroup_cpu_quota

    (tmp_path / "proc").write_text("0::/\n")
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_quota(tmp_path / "proc", tmp_path) == 2.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path / "proc", tmp_path) is None
