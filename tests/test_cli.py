"""The `farm` command as a user runs it: real processes, real files."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import redis
import srt
import webvtt

from farm.client import Client
from farm.config import Settings
from farm.serve.redis_server import free_port, start_redis
from tests.conftest import EVAL, JFK, JFK_PHRASE, LJSPEECH, ROOT, WorkerProcess, normalise, worker_env

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
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr
    status = farm("status", job_id, env=env)
    assert status.stdout.split()[:3] == [job_id, "succeeded", "100%"]


def test_status_shows_a_running_jobs_text_so_far(env: dict[str, str], farm_settings: Settings) -> None:
    client = Client(farm_settings)
    job = client.submit(LJSPEECH, language="en")  # 231 s: faster-whisper's long-form loop, a window per pass
    deadline = time.monotonic() + 300
    while not (current := job.status()).text and not current.done:
        assert time.monotonic() < deadline, current
        time.sleep(0.1)
    shown = farm("status", job.id, env=env).stdout.splitlines()
    text = job.result(timeout=300)["text"]
    client.close()
    # 231 s of audio on a CPU outlasts one `farm status` call by far: the job still runs
    assert shown[0].split()[1] == "started", shown
    assert len(shown) == 2 and shown[1].removeprefix("...") in text, shown  # the text's end, below the percent


def test_status_of_an_unknown_id_says_so(env: dict[str, str]) -> None:
    done = farm("status", "not-a-job", env=env)
    assert done.returncode != 0 and "%" not in done.stdout + done.stderr
    assert "no job not-a-job" in done.stderr, done


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
    from farm.commands.farms import _why_not_served

    assert not farm_settings.chosen("broker_url")  # the session Redis, as if it answered on 6379
    assert _why_not_served(farm_settings) is not None  # the session worker answers, yet it is not asked
    lonely = start_redis()
    try:
        _why_not_served(replace(farm_settings, broker_url=lonely.url, result_backend=lonely.url))
        assert redis.Redis.from_url(lonely.url).keys() == []  # no probe left a key behind
    finally:
        lonely.stop()


@pytest.fixture()
def lonely_env() -> Iterator[dict[str, str]]:
    """A broker nobody consumes from."""
    lonely = start_redis()
    yield os.environ | {"FARM_BROKER_URL": lonely.url, "FARM_RESULT_BACKEND": lonely.url}
    lonely.stop()


def test_commands_say_when_no_worker_consumes_the_queue(lonely_env: dict[str, str]) -> None:
    submitted = farm("submit", str(JFK), env=lonely_env)
    assert submitted.returncode == 0, submitted.stderr
    assert "no worker is consuming farm" in submitted.stderr
    job_id = submitted.stdout.strip()
    status = farm("status", job_id, env=lonely_env)
    assert status.stdout.strip() == f"{job_id} queued 0% (no worker is consuming farm)", status
    waited = farm("result", job_id, "--timeout", "15", env=lonely_env)
    assert "no worker is consuming farm; waiting (Ctrl-C to stop)" in waited.stderr
    assert waited.returncode == 1 and "did not finish within 15 s" in waited.stderr


def test_transcribe_says_when_its_queue_has_no_consumer(env: dict[str, str]) -> None:
    done = farm("transcribe", str(JFK), "--queue", "farm.gpu7", "--timeout", "15", env=env)
    assert "no worker is consuming farm.gpu7; waiting (Ctrl-C to stop)" in done.stderr
    assert done.returncode == 1 and "did not finish within 15 s" in done.stderr


SAMPLE = ROOT / "samples" / "jfk.mp3"  # same stem as JFK (jfk.flac), another file


def test_outputs_of_inputs_with_one_stem_never_collide(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "jfk.srt").write_text("an earlier run\n")
    done = farm("transcribe", str(JFK), str(SAMPLE), "--format", "srt", "--out", str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    for name in ("jfk.flac.srt", "jfk.mp3.srt"):
        assert JFK_PHRASE in normalise(" ".join(c.content for c in srt.parse((tmp_path / name).read_text())))
    assert (tmp_path / "jfk.srt").read_text() == "an earlier run\n"


def test_several_json_results_on_stdout_are_one_json_document(env: dict[str, str]) -> None:
    done = farm("transcribe", str(JFK), str(SAMPLE), "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    documents = json.loads(done.stdout)
    assert [d["file"] for d in documents] == [JFK.name, SAMPLE.name]
    assert all(JFK_PHRASE in normalise(d["result"]["text"]) for d in documents)


def test_several_formats_on_stdout_are_named(env: dict[str, str]) -> None:
    done = farm("transcribe", str(JFK), "--format", "srt", "--format", "vtt", env=env)
    assert done.returncode == 0, done.stderr
    srt_part, vtt_part = done.stdout.split("\n==> ")
    assert srt_part.startswith(f"==> {JFK.name} (srt) <==\n") and vtt_part.startswith(f"{JFK.name} (vtt) <==\nWEBVTT")
    assert list(srt.parse(srt_part.split("<==\n", 1)[1]))


def test_a_directory_means_the_audio_files_in_it(lonely_env: dict[str, str], tmp_path: Path) -> None:
    shutil.copy(JFK, tmp_path / "a.flac")
    shutil.copy(SAMPLE, tmp_path / "b.mp3")
    (tmp_path / "notes.txt").write_text("not audio")
    done = farm("submit", str(tmp_path), env=lonely_env)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = farm("submit", str(empty), env=lonely_env)
    assert refused.returncode == 1 and "is a directory with no audio files in it" in refused.stderr


def test_english_only_model_refuses_other_languages_and_translation(env: dict[str, str]) -> None:
    """The worker (tiny.en) refuses: no invented English reported as `en 1.0`."""
    for args, message in (
        (["--language", "de"], "is English-only and cannot transcribe 'de'"),
        (["--task", "translate"], "is English-only and cannot translate"),
    ):
        done = farm("transcribe", str(JFK), *args, env=env)
        assert done.returncode == 1 and message in done.stderr and 'model = "base"' in done.stderr, done.stderr
    english = farm("transcribe", str(JFK), "--language", "en", env=env)
    assert english.returncode == 0 and JFK_PHRASE in normalise(english.stdout)


def test_private_farm_refuses_before_starting(tmp_path: Path) -> None:
    """No farm configured: the producer knows the model it would start, and says so at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_BROKER", "FARM_RESULT"))}
    done = farm("transcribe", str(JFK), "--language", "de", "--task", "translate", env=env)
    assert done.returncode == 1 and "model tiny.en is English-only" in done.stderr
    assert "starting a private" not in done.stderr


def test_help_loads_no_subcommand() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "farm.cli", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0 and "transcribe" in done.stdout
    loaded = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    assert not [m for m in loaded if m.startswith(("farm.commands", "celery", "dynaconf", "redis"))]


def test_help_summaries_are_the_docstrings() -> None:
    import click

    from farm.cli import COMMANDS, main

    for name, (_module, summary) in COMMANDS.items():
        command = main.get_command(click.Context(main), name)
        assert command is not None and (command.help or "").split("\n\n")[0].replace("\n", " ") == summary


BAD_ARGUMENTS = [
    ["transcribe"],
    ["transcribe", "/no/such/file.flac"],
    ["transcribe", str(JFK), "--format", "docx"],
    ["transcribe", str(JFK), "--queue", "farm.gpu7", "--timeout", "2"],
    ["submit", "/no/such/file.flac"],
    ["submit", str(JFK), "--beam-size", "0"],
    ["status"],
    ["result", "00000000-0000-0000-0000-000000000000"],
    ["result", "{waiting}", "--timeout", "2"],
    ["result", "x", "--format", "docx"],
    ["worker", "--bogus"],
    ["up", "--bogus"],
    ["api", "--port", "http"],
    ["metrics", "--bogus"],
    ["config", "--bogus"],
    ["model", "import-ct2", "/no/such/dir", "/tmp/x"],
    ["bench", "{empty}"],
    ["bench", str(JFK), "--references", "{manifest}"],
    ["bench", str(JFK), "--concurrency", "four"],
    ["capacity", "--audio-hours", "0"],
    ["capacity", "--audio-hours", "10", "--model", "whisper-9000"],
    ["capacity", "--audio-hours", "10", "--bench", "{manifest}"],
    ["no-such-command"],
]


def test_no_subcommand_shows_a_traceback_for_bad_arguments(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "refs.jsonl").write_text('{"path": "other.flac", "reference": "hello"}\n')
    waiting = farm("submit", str(JFK), "--queue", "farm.gpu7", env=env).stdout.strip()  # nobody takes it
    paths = {"empty": str(tmp_path / "empty"), "manifest": str(tmp_path / "refs.jsonl"), "waiting": waiting}
    for args in BAD_ARGUMENTS:
        done = farm(*(arg.format(**paths) for arg in args), env=env)
        assert done.returncode != 0, args
        assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, (args, done.stderr)
        if args[:1] == ["result"] and "--timeout" in args:
            assert "did not finish within 2 s" in done.stderr  # the wait asked for, not another


def test_readme_translation_example_with_a_multilingual_model() -> None:
    """`FARM_MODEL=base farm transcribe call.flac --language de --task translate`, as the README says."""
    german = EVAL / "picovoice_leopard" / "test_de.wav"  # "Der hinter diesem Portal liegenden Raum wurde ..."
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_BROKER", "FARM_RESULT"))}
    env |= {"FARM_MODEL": "base", "FARM_DEVICES": "cpu", "FARM_CPU_THREADS": "2"}
    done = farm("transcribe", str(german), "--language", "de", "--task", "translate", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    words = normalise(result["text"]).split()
    assert result["language"] == "de" and {"room", "used"} <= set(words) and "raum" not in words, result["text"]


def test_readme_bench_and_capacity_examples_chain() -> None:
    """The capacity example's --model is one the bench example measures."""
    lines = (ROOT / "README.md").read_text().splitlines()
    bench = next(line for line in lines if line.startswith("farm bench "))
    planned = [line for line in lines if line.startswith("farm capacity ") and "--bench" in line]
    measured = bench.split("--model ", 1)[1].split()[0].split(",")
    assert planned and all(line.split("--model ", 1)[1].split()[0] in measured for line in planned)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signal_ends_the_private_farm_at_once(signum: int, tmp_path: Path) -> None:
    """What `timeout 60 farm transcribe ...` does: the signal goes to the command's process group."""
    long = EVAL / "longform" / "ljspeech_LJ001-0001_to_0032.flac"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_BROKER", "FARM_RESULT"))}
    env |= {"FARM_DEVICES": "cpu", "FARM_CPU_THREADS": "1", "FARM_FANOUT_ABOVE_S": "0"}
    cli = subprocess.Popen(
        [sys.executable, "-m", "farm.cli", "transcribe", str(long), "--out", str(tmp_path)],
        env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    command = psutil.Process(cli.pid)
    farm_processes = _wait_for_celery(command)
    os.killpg(cli.pid, signum)  # as `timeout` does: the command's whole group
    _gone, alive = psutil.wait_procs([command, *farm_processes], timeout=5)
    assert not alive, [_cmdline(p) for p in alive]
    stderr = cli.stderr.read() if cli.stderr else ""
    assert command.returncode == 128 + signum, stderr  # psutil reaped it
    assert "Traceback" not in stderr


def _wait_for_celery(cli: psutil.Process, timeout: float = 300) -> list[psutil.Process]:
    """The private farm's processes (redis-server, the supervisor, its Celery worker) once the worker runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        everyone = cli.children(recursive=True)
        if any("celery" in " ".join(_cmdline(p)) for p in everyone):
            time.sleep(2)  # let it get going: the model loads, the job starts
            return cli.children(recursive=True)
        time.sleep(0.2)
    raise AssertionError("the private farm did not start")


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def test_make_run_prints_one_line_per_step(tmp_path: Path) -> None:
    """What `make run` would run on a fresh clone: every command silent but for a one-line echo,
    pip's output sent to the install log."""
    venv = tmp_path / "venv"
    dry = subprocess.run(
        ["make", "--dry-run", "--always-make", "run", f"VENV={venv}"], capture_output=True, text=True, cwd=ROOT
    )
    assert dry.returncode == 0, dry.stderr
    commands = [line for line in dry.stdout.splitlines() if line.strip()]
    pips = [line for line in commands if "/pip install" in line]
    assert len(pips) == 3 and all(f">>{venv}/install.log 2>&1" in line for line in pips)
    steps = [line for line in commands if line.startswith("echo ")]
    assert len(steps) == 4  # the venv, torch, whisperfarm, the transcription
    make_file = (ROOT / "Makefile").read_text()
    recipe = make_file.split("$(VENV)/.installed: pyproject.toml constraints.txt\n", 1)[1].split("\n\n", 1)[0]
    run = make_file.split("\nrun: install\n", 1)[1].split("\n\n", 1)[0]
    assert all(line.startswith("\t@") for line in (recipe + "\n" + run).splitlines())  # make echoes nothing else
