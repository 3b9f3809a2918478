"""Settings reload per start: edit the mounted file, restart the process, new values apply.

This is what a ConfigMap change does in Kubernetes (checksum/config rolls the pods) and
what `docker compose restart` does with the bind-mounted settings.local.toml: no rebuild.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from farm.config import load_settings
from farm.queue.broker import celery_config
from farm.serve.redis_server import RedisServer, start_redis
from tests.conftest import ROOT, WorkerProcess

FARM = Path(sys.executable).with_name("farm")  # the console script, as a container runs it


def write_settings(path: Path, **values: Any) -> Path:
    lines = ["[default]"] + [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def farm_env(settings_file: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    return env | {
        "FARM_SETTINGS_FILE": str(ROOT / "settings.toml"),
        "FARM_SETTINGS_FILES": str(settings_file),
        "FARM_MODELS_DIR": os.environ["FARM_MODELS_DIR"],
        **extra,
    }


def farm(settings_file: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # A session of its own: if `farm worker` ever starts here, its Celery child dies with it.
    process = subprocess.Popen(
        [str(FARM), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=farm_env(settings_file), cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"farm {' '.join(args)} did not exit within {timeout} s:\n{err}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def effective(settings_file: Path) -> dict[str, Any]:
    done = farm(settings_file, "config", "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_config_reads_the_mounted_file_again_on_every_start(tmp_path: Path) -> None:
    mounted = write_settings(tmp_path / "settings.local.toml", concurrency=3, model="base", batch_size=4)
    first = effective(mounted)
    assert {k: first["values"][k] for k in ("concurrency", "model", "batch_size")} == {
        "concurrency": 3, "model": "base", "batch_size": 4,
    }  # fmt: skip
    assert first["sources"]["concurrency"] == f"{mounted} [default]"

    write_settings(mounted, concurrency=2, model="tiny.en", batch_size=8)
    second = effective(mounted)["values"]
    assert (second["concurrency"], second["model"], second["batch_size"]) == (2, "tiny.en", 8)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"concurrency": -1}, "concurrency"),
        ({"concurrency": "four"}, "concurrency"),
        ({"batch_size": "big"}, "batch_size"),
        ({"model": ""}, "model"),
        ({"time_limit": 100}, "soft_time_limit"),  # below soft_time_limit (1800)
    ],
)
def test_an_invalid_file_stops_the_worker_at_start(tmp_path: Path, values: dict[str, Any], key: str) -> None:
    mounted = write_settings(tmp_path / "settings.local.toml", **values)
    done = farm(mounted, "worker", timeout=30)  # it stops at once: no worker is started
    assert done.returncode == 1
    assert done.stderr.startswith("error: invalid settings: ") or done.stderr.startswith(f"error: {key}:")
    assert key in done.stderr.splitlines()[0] and "Traceback" not in done.stderr


@contextmanager
def running_worker(server: RedisServer, mounted: Path, log: Path) -> Iterator[tuple[WorkerProcess, dict[str, Any]]]:
    """``farm worker`` on the CPU with ``mounted`` layered in; yields it and its Celery stats."""
    env = farm_env(
        mounted, FARM_BROKER_URL=server.url, FARM_RESULT_BACKEND=server.url, FARM_DEVICES="cpu", FARM_CPU_WORKERS="1"
    )
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(FARM), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
    worker = WorkerProcess(process, log)
    app = Celery("reload-test")
    app.conf.update(celery_config(load_settings()) | {"broker_url": server.url, "result_backend": server.url})
    try:
        yield worker, _stats_when_up(app, worker)
    finally:
        app.close()
        worker.stop()


def _stats_when_up(app: Celery, worker: WorkerProcess) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.output()
        stats = app.control.inspect(timeout=0.5).stats() or {}
        if stats:
            [(node, node_stats)] = stats.items()
            assert node.startswith("cpu@")
            return dict(node_stats)
    raise AssertionError(f"worker did not answer:\n{worker.output()}")


@pytest.mark.slow
def test_a_restarted_worker_runs_with_the_new_values(tmp_path: Path) -> None:
    server = start_redis()
    try:
        mounted = write_settings(tmp_path / "settings.local.toml", concurrency=3, model="base", cpu_threads=1)
        with running_worker(server, mounted, tmp_path / "first.log") as (worker, stats):
            assert stats["pool"]["max-concurrency"] == 3
            worker.wait_for_log("loaded ctranslate2 model base")

        write_settings(mounted, concurrency=2, model="tiny.en", cpu_threads=1)
        with running_worker(server, mounted, tmp_path / "second.log") as (worker, stats):
            assert stats["pool"]["max-concurrency"] == 2
            worker.wait_for_log("loaded ctranslate2 model tiny.en")
    finally:
        server.stop()
