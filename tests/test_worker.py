"""`farm worker`: one process per device with its own queue, and warm shutdown."""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from farm.config import Settings
from farm.constants import CPU_QUEUE, SHARED_QUEUE
from farm.worker import plan
from tests.conftest import EVAL, private_farm

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
    [child] = plan(replace(farm_settings, devices="cpu"), hostname="box")
    assert child.argv[child.argv.index("--queues") + 1] == f"{CPU_QUEUE},{SHARED_QUEUE}"
    assert child.env["CUDA_VISIBLE_DEVICES"] == "" and child.env["FARM_DEVICE"] == "cpu"


@pytest.mark.slow
def test_sigterm_lets_the_running_job_finish(farm_settings: Settings, tmp_path: Path) -> None:
    with private_farm(farm_settings, tmp_path / "own.log") as (client, worker):
        job = client.submit(LJ, beam_size=1, queue=CPU_QUEUE)
        deadline = time.monotonic() + 60
        while job.status().state != "started" and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=300) == 0
        assert job.status().state == "succeeded", worker.output()
