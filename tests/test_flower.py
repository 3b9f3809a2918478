"""Flower, started the way `farm up` starts it, shows the farm's workers and their queues.

A real headless Chromium renders the pages (running Flower's JavaScript), and the
screenshot of the workers page is kept in test-artifacts/ for people to look at.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.client import Client
from farm.config import Settings
from farm.constants import CPU_QUEUE, SHARED_QUEUE
from farm.serve.local import flower_argv
from farm.serve.redis_server import free_port
from tests.api.servers import wait_for_http
from tests.conftest import JFK, ROOT, worker_env

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--virtual-time-budget=5000",
]  # fmt: skip


@pytest.fixture()
def flower(farm_settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with open(tmp_path / "flower.log", "wb") as log:
        process = subprocess.Popen(
            [*flower_argv(port), "--address=127.0.0.1"],
            env=worker_env(farm_settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthcheck", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def chromium(tmp_path: Path, *args: str) -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: apt-get install chromium (.ci/run does)")
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def wait_until_listed(flower: str, name: str, timeout: float = 30) -> None:
    """Flower lists a worker once it has heard an event (a heartbeat) from it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{flower}/workers?json=1", timeout=10) as response:
            if name in response.read().decode():
                return
        time.sleep(0.5)
    raise AssertionError(f"Flower never listed {name}")


def test_flower_shows_workers_with_their_queues(client: Client, flower: str, tmp_path: Path) -> None:
    (name,) = client.workers()
    for job in [client.submit(JFK, beam_size=1) for _ in range(2)]:
        job.result(timeout=120)
    wait_until_listed(flower, name)

    workers_page = chromium(tmp_path, "--dump-dom", f"{flower}/workers")
    assert f'title="{name}"' in workers_page and "Online" in workers_page
    worker_page = chromium(tmp_path, "--dump-dom", f"{flower}/worker/{name}")
    assert f"<td>{CPU_QUEUE}</td>" in worker_page and f"<td>{SHARED_QUEUE}</td>" in worker_page

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "flower-workers.png"
    screenshot.unlink(missing_ok=True)
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,800", f"{flower}/workers")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
