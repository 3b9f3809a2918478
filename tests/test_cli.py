"""The `farm` command as a user runs it: real processes, real files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import srt
import webvtt

from farm.config import Settings
from farm.serve.redis_server import free_port, start_redis
from tests.conftest import JFK, JFK_PHRASE, ROOT, WorkerProcess, normalise, worker_env

pytestmark = pytest.mark.slow


def farm(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farm.cli", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@pytest.fixture()
def env(farm_settings: Settings, worker: WorkerProcess) -> dict[str, str]:
    return worker_env(farm_settings)


def test_transcribe_writes_srt_vtt_json(env: dict[str, str], tmp_path: Path) -> None:
    done = farm(
        "transcribe",
        str(JFK),
        "--format",
        "srt",
        "--format",
        "vtt",
        "--format",
        "json",
        "--out",
        str(tmp_path),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    cues = list(srt.parse((tmp_path / "jfk.srt").read_text()))
    assert cues and JFK_PHRASE in normalise(" ".join(c.content for c in cues))
    ends = [c.end.total_seconds() for c in cues]
    assert ends == sorted(ends) and ends[-1] <= 11.01
    vtt = list(webvtt.from_buffer(io.StringIO((tmp_path / "jfk.vtt").read_text())))
    assert len(vtt) == len(cues)
    payload = json.loads((tmp_path / "jfk.json").read_text())
    assert {"text", "language", "duration", "segments"} <= payload.keys()
    assert all({"id", "start", "end", "text", "avg_logprob", "no_speech_prob"} <= s.keys() for s in payload["segments"])
    assert "100%" in done.stderr  # progress bars went to stderr


def test_submit_status_result(env: dict[str, str]) -> None:
    submitted = farm("submit", str(JFK), "--language", "en", env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    result = farm("result", job_id, "--timeout", "120", env=env)
    assert JFK_PHRASE in normalise(result.stdout)
    status = farm("status", job_id, env=env)
    assert status.stdout.split()[:3] == [job_id, "succeeded", "100%"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["transcribe", "/no/such/file.flac"], "no such file"),
        (["transcribe", str(JFK), "--language", "xx"], "unknown language code"),
        (["transcribe", str(JFK), "--beam-size", "0"], "beam_size"),
    ],
)
def test_bad_input_gives_one_line_error(env: dict[str, str], args: list[str], message: str) -> None:
    done = farm(*args, env=env)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_undecodable_file_fails_without_traceback(env: dict[str, str], tmp_path: Path) -> None:
    bogus = tmp_path / "photo.mp3"
    bogus.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2048))
    done = farm("transcribe", str(bogus), env=env)
    assert done.returncode == 1
    assert "photo.mp3" in done.stderr and "not decodable audio" in done.stderr and "Traceback" not in done.stderr


def test_config_shows_values_and_sources(env: dict[str, str]) -> None:
    own = {k: v for k, v in env.items() if k != "FARM_RESULT_BACKEND"}  # it follows the broker
    done = farm("config", "--json", env=own | {"FARM_CONCURRENCY": "2"})
    report = json.loads(done.stdout)
    assert report["values"]["concurrency"] == 2
    assert report["sources"]["concurrency"] == "environment variable FARM_CONCURRENCY"
    assert report["sources"]["engine"] == "farm/defaults.toml [default]"
    assert report["sources"]["result_backend"] == "broker_url (environment variable FARM_BROKER_URL)"


def test_invalid_settings_stop_with_the_key_named(env: dict[str, str]) -> None:
    done = farm("config", env=env | {"FARM_BEAM_SIZE": "99"})
    assert done.returncode == 1 and "beam_size" in done.stderr and "Traceback" not in done.stderr


def test_embedded_farm_when_no_broker_answers(tmp_path: Path) -> None:
    """No broker configured: a private Redis and worker start, do the job, and stop."""
    closed = f"redis://127.0.0.1:{free_port()}/0"
    env = os.environ | {
        "FARM_BROKER_URL": closed,
        "FARM_RESULT_BACKEND": "",
        "FARM_DEVICES": "cpu",
        "FARM_CPU_THREADS": "2",
    }
    done = farm("transcribe", str(JFK), "--out", str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    assert "starting a private Redis" in done.stderr
    assert JFK_PHRASE in normalise((tmp_path / "jfk.txt").read_text())
    leftovers = subprocess.run(["pgrep", "-f", closed.rsplit(":", 1)[1].split("/")[0]], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def test_embedded_farm_when_the_broker_has_no_worker(tmp_path: Path) -> None:
    """A Redis with nobody serving it: the job must not wait forever in its queue."""
    lonely = start_redis()
    try:
        env = os.environ | {"FARM_BROKER_URL": lonely.url, "FARM_DEVICES": "cpu", "FARM_CPU_THREADS": "2"}
        done = farm("transcribe", str(JFK), "--out", str(tmp_path), env=env)
        assert done.returncode == 0, done.stderr
        assert "no worker answered; starting a private Redis" in done.stderr
        assert JFK_PHRASE in normalise((tmp_path / "jfk.txt").read_text())
    finally:
        lonely.stop()


def test_default_url_is_never_handed_a_job(farm_settings: Settings, worker: WorkerProcess) -> None:
    """broker_url left at its default: a farm answering there is somebody else's, so not used or touched."""
    from farm.commands.jobs import _why_not_served

    assert not farm_settings.chosen("broker_url")  # the session Redis, as if it answered on 6379
    assert _why_not_served(farm_settings) is not None  # the session worker answers, yet it is not asked
    lonely = start_redis()
    try:
        _why_not_served(replace(farm_settings, broker_url=lonely.url, result_backend=lonely.url))
        assert redis.Redis.from_url(lonely.url).keys() == []  # no probe left a key behind
    finally:
        lonely.stop()
