"""`farm worker`: one process per device with its own queue, and warm shutdown."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from farm.config import Settings
from farm.constants import CPU_QUEUE, SHARED_QUEUE
from farm.serve.devices import MAX_AUTO_CONCURRENCY, Device, Gpu, auto_concurrency, select_devices
from farm.serve.supervisor import plan, worker_argv
from tests.conftest import EVAL, own_farm

LJ = EVAL / "longform" / "ljspeech_LJ001-0001_to_0032.flac"


def test_one_process_and_queue_per_gpu(farm_settings: Settings) -> None:
    settings = replace(farm_settings, devices="0,1", concurrency=2, device_concurrency={"gpu1": 4})
    children = plan(settings, hostname="box")
    assert [c.device.name for c in children] == ["gpu0", "gpu1"]
    for index, child in enumerate(children):
        argv = child.argv
        assert argv[argv.index("--queues") + 1] == f"farm.gpu{index},{SHARED_QUEUE}"
        assert argv[argv.index("--hostname") + 1] == f"gpu{index}@box"
        assert child.env["CUDA_VISIBLE_DEVICES"] == str(index) and child.env["FARM_DEVICE"] == "cuda"
    assert children[0].argv[children[0].argv.index("--concurrency") + 1] == "2"
    assert children[1].argv[children[1].argv.index("--concurrency") + 1] == "4"


def test_cpu_worker_when_no_gpu(farm_settings: Settings) -> None:
    [child] = plan(replace(farm_settings, devices="cpu", cpu_workers=1), hostname="box")
    assert child.argv[child.argv.index("--queues") + 1] == f"{CPU_QUEUE},{SHARED_QUEUE}"
    assert child.env["CUDA_VISIBLE_DEVICES"] == "" and child.env["FARM_DEVICE"] == "cpu"


@pytest.mark.slow
def test_sigterm_lets_the_running_job_finish(farm_settings: Settings, tmp_path: Path) -> None:
    with own_farm(farm_settings, tmp_path) as farm:
        client, worker = farm.client, farm.workers[0]
        job = client.submit(LJ, beam_size=1, queue=CPU_QUEUE)
        deadline = time.monotonic() + 60
        while job.status().state != "started" and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=300) == 0
        assert job.status().state == "succeeded", worker.output()


def test_auto_concurrency_follows_free_gpu_memory(farm_settings: Settings) -> None:
    gpus = [Gpu(0, "NVIDIA A100", 81920, 80000), Gpu(1, "Tesla T4", 15360, 4000)]
    settings = replace(farm_settings, devices="0,1", concurrency=0, model="large-v3")
    by_gpu = {}
    for device in select_devices(settings.devices):
        argv = worker_argv(settings, device, "box", gpus)
        by_gpu[device.name] = int(argv[argv.index("--concurrency") + 1])
    # large: 3100 MiB weights, 1550 MiB per job. A100: (0.9*80000-3100)//1550 = 44 -> capped at 16;
    # T4: (0.9*4000-3100)//1550 = 0 -> at least 1.
    assert by_gpu == {"gpu0": MAX_AUTO_CONCURRENCY, "gpu1": 1}
    small = replace(settings, model="tiny.en")
    # tiny: 78 MiB weights, 256 MiB per job: (3600-78)//256 = 13 on the T4.
    argv = worker_argv(small, Device("gpu1", 1), "box", gpus)
    assert argv[argv.index("--concurrency") + 1] == "13"
    assert auto_concurrency(Device("cpu", None), "tiny.en", gpus) == 4


def test_several_cpu_workers_share_the_cpu_queue(farm_settings: Settings) -> None:
    children = plan(replace(farm_settings, devices="cpu", cpu_workers=2), hostname="box")
    assert [c.device.name for c in children] == ["cpu0", "cpu1"]
    assert all(c.argv[c.argv.index("--queues") + 1] == f"{CPU_QUEUE},{SHARED_QUEUE}" for c in children)


@pytest.mark.parametrize("threads", [1, 2])
def test_cpu_workers_auto_is_one_per_cpu_whatever_the_threads(farm_settings: Settings, threads: int) -> None:
    settings = replace(farm_settings, devices="cpu", cpu_workers=0, cpu_threads=threads)
    assert len(plan(settings, hostname="box")) == (os.cpu_count() or 1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "gathered"),
    [
        ({"FARM_CONCURRENCY": "0"}, 4),  # automatic: the CPU value, not 0 (nothing would ever be packed)
        ({"FARM_CONCURRENCY": "2", "FARM_DEVICE_CONCURRENCY": "{ cpu = 3 }"}, 3),  # the device's own value
    ],
)
def test_the_child_batcher_gathers_the_resolved_concurrency(
    farm_settings: Settings, tmp_path: Path, extra: dict[str, str], gathered: int
) -> None:
    with own_farm(farm_settings, tmp_path, **extra) as farm:
        worker = farm.workers[0]
        worker.wait_for_log("runtime: ", timeout=300)
        banner = next(line for line in worker.output().splitlines() if "runtime: " in line)
    assert f"gathers up to {gathered} jobs" in banner, banner
