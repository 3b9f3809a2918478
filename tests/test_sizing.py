"""concurrency = 0 and batch_size = 0: sized from the device's free memory and the model.

The GPU inventories are what nvidia-smi reports on such cards (no GPU here); the
arithmetic is checked by hand in each comment.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from farm.config import Settings
from farm.serve.devices import (
    CPU,
    MAX_AUTO_BATCH,
    Device,
    Gpu,
    auto_batch_size,
    size_device,
    this_device,
    window_mb,
)
from farm.serve.runtime import batch_policy
from farm.serve.supervisor import _child
from tests.conftest import ROOT

GPU0 = Device("gpu0", 0)
H200 = [Gpu(0, "NVIDIA H200", 143771, 140000)]
T4 = [Gpu(0, "Tesla T4", 15360, 15000)]
FARM = Path(sys.executable).with_name("farm")


def test_a_window_costs_an_eighth_of_the_weights_per_beam() -> None:
    assert window_mb("large-v3", 1) == pytest.approx(3100 / 8)
    assert window_mb("large-v3", 5) == pytest.approx(5 * 3100 / 8)
    assert window_mb("tiny.en", 1) == 64.0  # the floor: 78 / 8 would be under 10 MiB


def test_auto_batch_size_follows_free_memory_and_beam() -> None:
    # T4, large-v3, beam 5: (0.8 * 15000 - 3100) // 1937.5 = 8900 // 1937.5 = 4
    assert auto_batch_size(GPU0, "large-v3", T4, beam_size=5) == 4
    # beam 1: 8900 // 387.5 = 22
    assert auto_batch_size(GPU0, "large-v3", T4, beam_size=1) == 22
    # H200: (112000 - 3100) // 1937.5 = 56, capped
    assert auto_batch_size(GPU0, "large-v3", H200, beam_size=5) == MAX_AUTO_BATCH
    # a card with too little free memory still gets one window, and OOM halving has nothing to halve
    assert auto_batch_size(GPU0, "large-v3", [Gpu(0, "small", 4096, 3000)], beam_size=5) == 1
    assert auto_batch_size(CPU, "large-v3", H200) == 1  # CPUs do not gain from padded batches
    assert auto_batch_size(Device("gpu1", 1), "large-v3", H200) == 1  # not in the inventory: nothing known free


def test_auto_concurrency_holds_a_full_batch_on_a_gpu() -> None:
    # H200, large-v3: auto_concurrency = min(16, (126000 - 3100) // 1550) = 16, batch 32 -> 32 jobs
    both = size_device(GPU0, "large-v3", H200, concurrency=0, batch_size=0, beam_size=5)
    assert (both.concurrency, both.batch_size) == (32, 32)
    assert "concurrency and batch_size automatic: 140,000 MiB free, ~3,100 MiB of fp16 weights" in both.describe()
    fixed = size_device(GPU0, "large-v3", H200, concurrency=6, batch_size=0, beam_size=5)
    assert (fixed.concurrency, fixed.batch_size) == (6, 32) and "batch_size automatic" in fixed.reason
    assert size_device(CPU, "tiny.en", [], 0, 0, 5).describe() == (
        "cpu: concurrency 4, batch_size 1 (concurrency and batch_size automatic: CPU defaults)"
    )


def test_the_supervisor_hands_the_child_its_batch_and_logs_it(
    farm_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(farm_settings, model="large-v3", concurrency=0, batch_size=0, beam_size=1)
    with caplog.at_level(logging.INFO, logger="farm.serve.supervisor"):
        child = _child(settings, GPU0, "host", T4)
    assert (child.env["FARM_BATCH_SIZE"], child.env["FARM_CONCURRENCY"]) == ("22", "22")
    assert "sizing gpu0: concurrency 22, batch_size 22 (concurrency and batch_size automatic" in caplog.text


def test_a_worker_started_on_its_own_resolves_batch_size_0(farm_settings: Settings) -> None:
    # No GPU here: the CPU's value, never 0 (the batcher would make empty chunks).
    assert batch_policy(replace(farm_settings, batch_size=0, device="cpu")).batch_size == 1
    assert this_device("cpu") == CPU


def test_farm_config_shows_what_each_device_gets() -> None:
    env = os.environ | {"FARM_BATCH_SIZE": "0", "FARM_DEVICES": "cpu", "FARM_CPU_WORKERS": "1"}
    done = subprocess.run([str(FARM), "config"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "cpu: concurrency 4, batch_size 1 (batch_size automatic: CPU defaults)" in done.stdout
