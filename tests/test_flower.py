"""Flower, started the way `farm up` starts it, shows the farm's workers, queues and jobs.

A real headless Chromium renders the pages (running Flower's JavaScript), and the
screenshot of the workers page is kept in test-artifacts/ for people to look at.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from farm.client import Client
from farm.config import Settings
from farm.constants import CPU_QUEUE, SHARED_QUEUE
from farm.serve.local import flower_argv, flower_env, worker_events
from farm.serve.redis_server import free_port, start_redis
from tests.api.servers import wait_for_http
from tests.conftest import JFK, ROOT, own_farm, worker_env

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--virtual-time-budget=5000",
]  # fmt: skip


@contextmanager
def running_flower(settings: Settings, log: Path, address: str = "127.0.0.1", **env: str) -> Iterator[str]:
    """Flower with the argv and environment `farm up` gives it."""
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            flower_argv(port, address), env=worker_env(settings) | flower_env(settings) | env,
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_http(f"http://{address}:{port}/healthcheck", process)
        yield f"http://{address}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture()
def flower(farm_settings: Settings, tmp_path: Path) -> Iterator[str]:
    with running_flower(farm_settings, tmp_path / "flower.log") as url:
        yield url


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


def test_the_broker_tab_shows_queue_lengths(farm_settings: Settings, tmp_path: Path) -> None:
    server = start_redis()  # no worker: Flower lists the shared queue, holding what was sent
    settings = replace(farm_settings, broker_url=server.url, result_backend=server.url)
    client = Client(settings)
    try:
        for _ in range(3):
            client.submit(JFK, beam_size=1)
        with running_flower(settings, tmp_path / "flower.log") as url:
            page = chromium(tmp_path, "--dump-dom", f"{url}/broker")
    finally:
        client.close()
        server.stop()
    row = re.search(rf'<tr id="{SHARED_QUEUE}">(.*?)</tr>', page, re.S)
    assert row is not None, page[-3000:]
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]
    assert cells[:2] == [SHARED_QUEUE, "3"], cells


def test_flower_listens_on_the_configured_host_behind_basic_auth(farm_settings: Settings, tmp_path: Path) -> None:
    settings = replace(farm_settings, flower_basic_auth="ops:s3cret-pass")
    with running_flower(settings, tmp_path / "flower.log", address="127.0.0.2") as url:
        assert _status(f"{url}/workers") == 401
        assert _status(f"{url}/workers", ("ops", "s3cret-pass")) == 200
        with pytest.raises(urllib.error.URLError):  # not on every interface
            urllib.request.urlopen(url.replace("127.0.0.2", "127.0.0.1") + "/healthcheck", timeout=5)


def test_flower_sees_a_job_a_worker_takes_as_it_starts(farm_settings: Settings, tmp_path: Path) -> None:
    server = start_redis()
    settings = replace(farm_settings, broker_url=server.url, result_backend=server.url)
    early = Client(settings)
    try:
        job = early.submit(JFK, beam_size=1)  # waiting before any worker is up
        log = tmp_path / "flower.log"
        with (
            running_flower(settings, log, FLOWER_UNAUTHENTICATED_API="true") as url,
            own_farm(settings, tmp_path, redis_url=server.url, **worker_events(True)) as farm,
        ):
            farm.client.job(job.id).result(timeout=300)
            deadline = time.monotonic() + 30
            while _state(tasks := _json(f"{url}/api/tasks"), job.id) != "SUCCESS" and time.monotonic() < deadline:
                time.sleep(0.5)
        assert _state(tasks, job.id) == "SUCCESS", tasks
    finally:
        early.close()
        server.stop()


def _status(url: str, login: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if login is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(login).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _state(tasks: dict[str, dict[str, object]], job_id: str) -> object:
    return tasks.get(job_id, {}).get("state")


def _json(url: str) -> dict[str, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        found: dict[str, dict[str, object]] = json.loads(response.read())
        return found
