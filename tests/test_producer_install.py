"""`pip install whisperfarm` (the producer install: no torch, no numpy) in a fresh venv, used
from an empty directory, exactly as the README's producer examples are run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.serve.redis_server import RedisServer, start_redis
from tests.conftest import JFK, ROOT

pytestmark = pytest.mark.slow

INSTALL_TIMEOUT_S = 900  # the dependencies come from the pip cache or PyPI


@pytest.fixture(scope="module")
def producer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh venv holding the wheel built from this tree and its dependencies."""
    work = tmp_path_factory.mktemp("producer")
    source = work / "whisperfarm"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("farm", "tasks"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", work, source])
    _run([sys.executable, "-m", "venv", work / "venv"])
    wheel = next(work.glob("whisperfarm-*.whl"))
    _run([work / "venv" / "bin" / "pip", "install", "-q", "-c", ROOT / "constraints.txt", wheel])
    return work / "venv" / "bin"


def _run(argv: list[object]) -> None:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture()
def empty_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "elsewhere"
    directory.mkdir()
    return directory


def _producer_env(**extra: str) -> dict[str, str]:
    # Nothing of this checkout: no PYTHONPATH, no settings file, no FARM_* from the test session.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_") and k != "PYTHONPATH"}
    return env | extra


def _farm(bin_dir: Path, cwd: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "farm"), *args], cwd=cwd, env=_producer_env(**env), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.fixture()
def lonely_redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


def test_producer_install_has_no_worker_side(producer: Path) -> None:
    done = subprocess.run([str(producer / "python"), "-c", "import numpy"], capture_output=True, text=True)
    assert done.returncode != 0  # what the tests below rely on: a producer-only install


def test_config_and_client_work_from_any_directory(producer: Path, empty_dir: Path, lonely_redis: RedisServer) -> None:
    shown = _farm(producer, empty_dir, "config", FARM_BROKER_URL=lonely_redis.url)
    assert shown.returncode == 0, shown.stderr
    assert "environment variable FARM_BROKER_URL" in shown.stdout and "farm/defaults.toml [default]" in shown.stdout
    client = subprocess.run(
        [str(producer / "python"), "-c", "from farm.client import Client; print(Client().settings.model)"],
        cwd=empty_dir, env=_producer_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert client.returncode == 0 and client.stdout.strip() == "tiny.en", client.stderr


def test_submit_from_any_directory(producer: Path, empty_dir: Path, lonely_redis: RedisServer) -> None:
    done = _farm(producer, empty_dir, "submit", str(JFK), FARM_BROKER_URL=lonely_redis.url)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 1 and "Traceback" not in done.stderr


def test_transcribe_without_worker_extra_says_what_to_install(producer: Path, empty_dir: Path) -> None:
    """No farm to reach and no worker side installed: say so at once, not after a worker dies at start."""
    done = _farm(producer, empty_dir, "transcribe", str(JFK))
    assert done.returncode == 1
    assert "install whisperfarm[worker] to run a local worker, or point FARM_BROKER_URL at a farm" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "starting a private" not in done.stderr  # said before any worker was tried
