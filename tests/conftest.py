"""Shared fixtures: real Redis servers, real worker processes, real audio.

Nothing is mocked: a session Redis starts on a free port, workers are ``farm worker``
processes with the tiny.en CTranslate2 model, and audio comes from ../shared/eval.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import redis

from farm.client import Client
from farm.config import Settings, load_settings
from farm.inference.weights.models import resolve_model
from farm.serve.redis_server import RedisServer, start_redis

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
JFK = EVAL / "openai_whisper" / "jfk.flac"
JFK_PHRASE = "ask not what your country can do for you"
LJSPEECH = EVAL / "longform" / "ljspeech_LJ001-0001_to_0032.flac"
LONG_CLIP_S = 90  # three 30 s windows: faster-whisper's long-form path reports after each
ONE_WINDOW_CLIP_S = 28  # one window that Whisper's seek loop decodes in two passes


def eval_rows() -> list[dict[str, object]]:
    with open(EVAL / "manifest.jsonl") as manifest:
        return [json.loads(line) for line in manifest]


def librispeech_clips(count: int) -> list[dict[str, object]]:
    rows = [r for r in eval_rows() if str(r["path"]).startswith("librispeech_test_other/")]
    return sorted(rows, key=lambda r: str(r["path"]))[:count]


def normalise(text: str) -> str:
    kept = "".join(c.lower() if c.isalnum() or c.isspace() or c == "'" else " " for c in text)
    return " ".join(kept.split())


@pytest.fixture(scope="session", autouse=True)
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Tests never touch the developer's Redis or model cache.
    os.environ["FARM_SETTINGS_FILE"] = str(ROOT / "settings.toml")
    os.environ["FARM_MODELS_DIR"] = str(tmp_path_factory.mktemp("models"))
    os.environ.pop("FARM_ENV", None)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def farm_settings(redis_server: RedisServer) -> Settings:
    return replace(load_settings(), broker_url=redis_server.url, result_backend=redis_server.url)


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        self.process.terminate()  # SIGTERM: warm shutdown, forwarded to the Celery children
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if os.getpgid(self.process.pid) == self.process.pid:  # its own group: take the children too
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.kill()
            return self.process.wait()

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert time.monotonic() < deadline, f"no {text!r} in the worker log:\n{self.output()}"
            time.sleep(0.2)


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    return os.environ | {
        "FARM_BROKER_URL": settings.broker_url,
        "FARM_RESULT_BACKEND": settings.result_backend,
        "FARM_DEVICES": "cpu",
        "FARM_CPU_THREADS": "2",
        "FARM_CPU_WORKERS": "1",
        **extra,
    }


def start_worker(settings: Settings, log: Path, count: int = 1, **extra: str) -> WorkerProcess:
    """Start ``farm worker`` and wait until ``count`` worker processes answer a ping."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "farm.cli", "worker"],
            env=worker_env(settings, **extra), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    worker = WorkerProcess(process, log)
    try:
        _wait_for_pings(Client(settings), worker, count)
    except BaseException:
        worker.stop()  # never leave an orphan worker behind a failed start
        raise
    return worker


def _wait_for_pings(client: Client, worker: WorkerProcess, count: int) -> None:
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            assert worker.process.poll() is None, worker.output()
            if len(_answering(client)) >= count:
                return
        raise AssertionError(f"worker did not start:\n{worker.output()}")
    finally:
        client.close()


def _answering(client: Client) -> list[str]:
    # A broadcast can meet a connection Redis dropped meanwhile; asking again is harmless.
    try:
        return client.workers(timeout=0.5)
    except redis.exceptions.ConnectionError:
        time.sleep(0.2)
        return []


@pytest.fixture(scope="session")
def worker(farm_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    process = start_worker(farm_settings, tmp_path_factory.mktemp("worker") / "worker.log")
    yield process
    process.stop()


_SUCCEEDED = re.compile(r"Task farm\.transcribe\[([0-9a-f-]{36})\] succeeded")
_RECEIVED = re.compile(r"Task farm\.transcribe\[([0-9a-f-]{36})\] received")


@dataclass
class Farm:
    """A Redis and ``farm worker`` processes that no other test can take jobs from."""

    settings: Settings
    client: Client
    directory: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(self, count: int = 1, **extra: str) -> WorkerProcess:
        log = self.directory / f"worker-{len(self.workers)}.log"
        worker = start_worker(self.settings, log, count, **extra)
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(w.output() for w in self.workers)

    def executions(self) -> Counter[str]:
        """How many times each job ran to success, from every worker's log."""
        return Counter(_SUCCEEDED.findall(self.logs()))

    def receptions(self) -> Counter[str]:
        return Counter(_RECEIVED.findall(self.logs()))

    def stop(self) -> None:
        self.client.close()
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.stop()


@contextmanager
def own_farm(
    settings: Settings, directory: Path, redis_url: str | None = None, count: int = 1, **extra: str
) -> Iterator[Farm]:
    """A farm on ``redis_url`` (default: a throw-away Redis), so the session worker cannot take its
    jobs, with one ``farm worker`` started and ``count`` of its processes answering."""
    server: RedisServer | None = None
    if redis_url is None:
        server = start_redis()
        redis_url = server.url
    own = replace(settings, broker_url=redis_url, result_backend=redis_url)
    farm = Farm(own, Client(own), directory)
    try:
        farm.start_worker(count, **extra)
        yield farm
    finally:
        farm.stop()
        if server is not None:
            server.stop()


def ljspeech_cut(seconds: float, directory: Path) -> Path:
    """The first ``seconds`` of the LJSpeech long-form file, as FLAC (under the API tests' upload limit)."""
    from farm.inference import audio
    from tests.test_audio import encode

    samples = audio.decode(LJSPEECH.read_bytes(), 0.0, seconds, LJSPEECH.name)
    target = directory / f"ljspeech_{seconds:g}s.flac"
    encode(samples, 16000, target, "flac", "flac", 1)
    return target


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ljspeech_cut(LONG_CLIP_S, tmp_path_factory.mktemp("long"))


@pytest.fixture(scope="session")
def one_window_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ljspeech_cut(ONE_WINDOW_CLIP_S, tmp_path_factory.mktemp("one-window"))


@pytest.fixture()
def client(farm_settings: Settings, worker: WorkerProcess) -> Iterator[Client]:
    farm_client = Client(farm_settings)
    yield farm_client
    farm_client.close()


# --- real models, built once per session -------------------------------------------


def tiny_en_ct2() -> Path:
    return Path(resolve_model("tiny.en", "ctranslate2", "/nonexistent"))


def base_ct2_dir(factory: pytest.TempPathFactory) -> Path:
    """Multilingual base, its two halves joined by farm.inference.weights.models like a worker does."""
    return Path(resolve_model("base", "ctranslate2", str(factory.getbasetemp() / "ct2-models")))


def converted(factory: pytest.TempPathFactory, name: str, src: Path) -> Path:
    """``import_ct2`` of ``src``, reused when an earlier fixture already converted it."""
    from farm.inference.weights.convert import import_ct2

    dst = factory.getbasetemp() / "hf-models" / name
    # import_ct2 renames a complete directory into place, so existence means finished
    return dst if (dst / "config.json").is_file() else import_ct2(src, dst)


@pytest.fixture(scope="session")
def tiny_en_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted(tmp_path_factory, "tiny.en", tiny_en_ct2())


@pytest.fixture(scope="session")
def base_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted(tmp_path_factory, "base", base_ct2_dir(tmp_path_factory))
