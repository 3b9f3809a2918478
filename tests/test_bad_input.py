"""Bad input through the client, the CLI and the queue: a typed, permanent error a user
can read, and the worker goes on serving; nothing else in flight is lost.

Every worker-side case is submitted at once to one farm of its own (input roots set,
1 MiB input limit) together with good jobs, so the cases also prove that a bad job
does not disturb its neighbours. docs/reliability.md lists each case and its outcome.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from farm.config import Settings
from farm.constants import DEAD_LETTER_KEY, SHARED_QUEUE, TRANSCRIBE_TASK
from farm.errors import InvalidJobError, StorageNotFoundError, UnknownLanguageError
from tests.conftest import ROOT, worker_env
from tests.reliability.conftest import Farm, own_farm, wait_all, wait_until
from tests.reliability.media import bad_inputs, clip

pytestmark = pytest.mark.slow

NOT_AUDIO = r"is not decodable audio"
OUTSIDE = r"is outside the directories this farm reads inputs from \(input_roots\)"
NOT_WRITABLE = r"is outside the directories this farm writes results to \(output_roots\)"
GOOD_JOBS = 6


@dataclass(frozen=True)
class Case:
    """One bad (or merely odd) input; ``error`` is None when it must succeed."""

    name: str
    error: str | None
    kind: str = ""  # the exception class the worker raised


FILE_CASES = [
    Case("empty.wav", rf"'empty\.wav' {NOT_AUDIO}", "AudioDecodeError"),
    Case("truncated_head.flac", rf"'truncated_head\.flac' {NOT_AUDIO}", "AudioDecodeError"),
    Case("truncated_half.flac", rf"'truncated_half\.flac' {NOT_AUDIO}", "AudioDecodeError"),
    Case("random.wav", rf"'random\.wav' {NOT_AUDIO}", "AudioDecodeError"),
    Case("notes.wav", rf"'notes\.wav' {NOT_AUDIO}", "AudioDecodeError"),
    Case("photo.png", r"'photo\.png' is not decodable audio: it has no audio track", "AudioDecodeError"),
    Case("photo_named.wav", r"'photo_named\.wav' is not decodable audio: it has no audio track", "AudioDecodeError"),
    Case(
        "video_no_audio.mp4", r"'video_no_audio\.mp4' is not decodable audio: it has no audio track", "AudioDecodeError"
    ),
    Case("over_size_limit.wav", r"over_size_limit\.wav is 1 MiB, over the 1 MiB input limit \(max_input_mb\)"),
    Case("symlink_to_passwd.wav", OUTSIDE, "StorageAccessError"),
    Case("symlink_to_audio_outside.wav", OUTSIDE, "StorageAccessError"),
    # Odd but valid audio: decoded, down-mixed and resampled, then transcribed.
    Case("short_0.1s.wav", None),
    Case("six_channels.wav", None),
    Case("8khz.wav", None),
    Case("96khz.wav", None),
    Case("float_nan_inf.wav", None),
]
HEADER_ONLY = Case("header_only.wav", r"no audio|not decodable", "AudioDecodeError")


def _messages(inputs: Path, inline_limit: int) -> dict[str, Any]:
    """Job messages put on the queue directly, bypassing every client-side check."""
    audio = str(inputs / "good-0.wav")
    results = inputs.parent / "results"
    return {
        "not_an_object": "just a string",
        "audio_not_a_string": {"audio": 42},
        "empty_object": {},
        "options_not_an_object": {"audio": audio, "options": [1, 2]},
        "unknown_option": {"audio": audio, "options": {"response_format": "xml"}},
        "unknown_output_format": {"audio": audio, "formats": ["xml"]},
        "unknown_language": {"audio": audio, "options": {"language": "xx"}},
        "negative_temperature": {"audio": audio, "options": {"temperature": -0.5}},
        "beam_size_0": {"audio": audio, "options": {"beam_size": 0}},
        "unknown_task": {"audio": audio, "options": {"task": "summarize"}},
        "bad_base64": {"audio": "", "audio_b64": "@@not base64@@"},
        "non_ascii_base64": {"audio": "", "audio_b64": "é"},
        "inline_over_limit": {"audio": "", "audio_b64": base64.b64encode(b"\0" * (inline_limit + 3)).decode()},
        "gopher_scheme": {"audio": "gopher://example.com/a.wav"},
        "http_scheme": {"audio": "http://169.254.169.254/latest/meta-data"},
        "relative_traversal": {"audio": "../../etc/passwd"},
        "dotdot_out_of_root": {"audio": f"{inputs}/../../../../../../../etc/passwd"},
        "file_uri_out_of_root": {"audio": "file:///etc/passwd"},
        "missing_file_in_root": {"audio": str(inputs / "missing.wav")},
        "symlink_out_of_root": {"audio": str(inputs / "symlink_to_audio_outside.wav")},
        "output_in_root": {"audio": audio, "output": str(results), "formats": ["txt"]},
        "output_out_of_root": {"audio": audio, "output": str(inputs.parent / "elsewhere"), "formats": ["txt"]},
        "output_dotdot_out_of_root": {"audio": audio, "output": f"{results}/../elsewhere", "formats": ["txt"]},
        "output_symlink_out_of_root": {"audio": audio, "output": str(results / "escape"), "formats": ["txt"]},
    }


MESSAGE_CASES = [
    Case("not_an_object", r"a job must be a JSON object, got str", "InvalidJobError"),
    Case("audio_not_a_string", r"a job needs 'audio': a file path or s3:// URI", "InvalidJobError"),
    Case("empty_object", r"a job needs 'audio'", "InvalidJobError"),
    Case("options_not_an_object", r"'options' must be a JSON object", "InvalidJobError"),
    Case("unknown_option", r"unknown option\(s\) response_format; known: language", "InvalidJobError"),
    Case("unknown_output_format", r"unknown output format\(s\) xml; choose from txt", "InvalidJobError"),
    Case("unknown_language", r"unknown language code 'xx'", "UnknownLanguageError"),
    Case("negative_temperature", r"temperature must be a number .* from 0 to 1, not -0\.5", "InvalidJobError"),
    Case("beam_size_0", r"beam_size must be an integer from 1 to 20, not 0", "InvalidJobError"),
    Case("unknown_task", r"task must be 'transcribe' or 'translate', not 'summarize'", "InvalidJobError"),
    Case("bad_base64", r"inline audio is not valid base64", "InvalidJobError"),
    Case("non_ascii_base64", r"inline audio is not valid base64", "InvalidJobError"),
    Case("inline_over_limit", r"inline audio must be base64 of at most \d+ bytes", "InvalidJobError"),
    Case("gopher_scheme", r"unsupported audio reference scheme 'gopher'", "InvalidJobError"),
    Case("http_scheme", r"unsupported audio reference scheme 'http'", "InvalidJobError"),
    Case("relative_traversal", OUTSIDE, "StorageAccessError"),
    Case("dotdot_out_of_root", OUTSIDE, "StorageAccessError"),
    Case("file_uri_out_of_root", OUTSIDE, "StorageAccessError"),
    Case("missing_file_in_root", r"no such file: .*missing\.wav", "StorageNotFoundError"),
    Case("symlink_out_of_root", OUTSIDE, "StorageAccessError"),
    Case("output_in_root", None),
    Case("output_out_of_root", NOT_WRITABLE, "StorageAccessError"),
    Case("output_dotdot_out_of_root", NOT_WRITABLE, "StorageAccessError"),
    Case("output_symlink_out_of_root", NOT_WRITABLE, "StorageAccessError"),
]


@dataclass
class Outcome:
    state: str
    error: str
    kind: str
    result: dict[str, Any] | None


@dataclass
class Run:
    farm: Farm
    inputs: Path
    outcomes: dict[str, Outcome]
    good_ids: list[str]
    bad_ids: list[str]


@pytest.fixture(scope="module")
def run(farm_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    base = tmp_path_factory.mktemp("bad-input")
    inputs = base / "inputs"
    inputs.mkdir()
    files = bad_inputs(inputs)
    goods = [clip(inputs, 3.0, f"good-{i}.wav", offset=i) for i in range(GOOD_JOBS)]
    (base / "results").mkdir()
    (base / "results" / "escape").symlink_to(base / "elsewhere", target_is_directory=True)
    extra = {
        "FARM_INPUT_ROOTS": f'["{inputs}"]', "FARM_OUTPUT_ROOTS": f'["{base / "results"}"]',
        "FARM_MAX_INPUT_MB": "1", "FARM_CONCURRENCY": "2",
    }  # fmt: skip
    with own_farm(farm_settings, base, **extra) as farm:
        client = farm.client
        results: dict[str, Any] = {}
        good: list[Any] = []
        messages = _messages(inputs, farm.settings.inline_audio_limit)
        # Interleaved: good jobs run among the bad ones and must all come back.
        for index, case in enumerate([*FILE_CASES, HEADER_ONLY]):
            results[case.name] = client.app.AsyncResult(client.submit(files[case.name], beam_size=1).id)
            if index % 3 == 0 and len(good) < GOOD_JOBS:
                good.append(client.app.AsyncResult(client.submit(goods[len(good)], beam_size=1).id))
        for name, message in messages.items():
            results[name] = client.app.send_task(TRANSCRIBE_TASK, args=[message], queue=SHARED_QUEUE)
        results["no_arguments"] = client.app.send_task(TRANSCRIBE_TASK, args=[], queue=SHARED_QUEUE)
        good += [client.app.AsyncResult(client.submit(g, beam_size=1).id) for g in goods[len(good) :]]
        for result in [*results.values(), *good]:
            result.get(timeout=180, propagate=False)
        outcomes = {name: _outcome(result) for name, result in results.items()}
        yield Run(farm, inputs, outcomes, [g.id for g in good], [r.id for r in results.values()])


def _outcome(result: Any) -> Outcome:
    info = result.info
    if result.state == "SUCCESS":
        return Outcome("succeeded", "", "", dict(info))
    return Outcome(result.state.lower(), str(info), type(info).__name__, None)


def _check(outcome: Outcome, case: Case) -> None:
    if case.error is None:
        assert outcome.state == "succeeded", outcome
        return
    assert outcome.state == "failure", outcome
    assert re.search(case.error, outcome.error), outcome.error
    if case.kind:
        assert outcome.kind == case.kind, outcome
    assert "Traceback" not in outcome.error


@pytest.mark.parametrize("case", FILE_CASES, ids=lambda c: c.name)
def test_file_through_the_client(run: Run, case: Case) -> None:
    outcome = run.outcomes[case.name]
    _check(outcome, case)
    if outcome.result is not None and case.name != "short_0.1s.wav":
        assert outcome.result["duration"] == pytest.approx(3.0, abs=0.01)
        # The speech came through: JFK's opening words (NaN/Inf samples, as clicks, garble the rest).
        assert outcome.result["text"].lower().startswith("and so"), outcome.result["text"]


def test_header_only_wav_is_rejected(run: Run) -> None:
    _check(run.outcomes[HEADER_ONLY.name], HEADER_ONLY)


@pytest.mark.parametrize("case", MESSAGE_CASES, ids=lambda c: c.name)
def test_message_put_on_the_queue_directly(run: Run, case: Case) -> None:
    _check(run.outcomes[case.name], case)


def test_results_are_written_only_inside_the_output_roots(run: Run) -> None:
    base = run.inputs.parent
    written = run.outcomes["output_in_root"].result
    assert written is not None and Path(written["outputs"]["txt"]).parent == base / "results"
    assert Path(written["outputs"]["txt"]).read_text().lower().startswith("and so")
    assert not (base / "elsewhere").exists()  # refused before anything was made, even a directory


def test_message_without_arguments_fails_without_harm(run: Run) -> None:
    # Celery itself rejects the call (a TypeError, not one of ours), and nothing else suffers.
    outcome = run.outcomes["no_arguments"]
    assert outcome.state == "failure" and "missing 1 required positional argument" in outcome.error


def test_worker_kept_serving_and_lost_nothing(run: Run) -> None:
    statuses = wait_all(run.farm.client, [run.farm.client.job(i) for i in run.good_ids], timeout=120)
    assert [s.state for s in statuses] == ["succeeded"] * GOOD_JOBS
    log = run.farm.logs()
    assert log.count("loaded ctranslate2 model") == 1  # one process all along: no crash, no restart
    assert run.farm.workers[0].process.poll() is None
    received = run.farm.receptions()
    assert [received[i] for i in run.bad_ids] == [1] * len(run.bad_ids)  # each reached a task once: never retried


@pytest.mark.parametrize(
    ("source", "options", "error"),
    [
        ("good", {"language": "xx"}, UnknownLanguageError),
        ("good", {"response_format": "xml"}, InvalidJobError),
        ("good", {"temperature": -0.5}, InvalidJobError),
        ("good", {"temperature": "hot"}, InvalidJobError),
        ("good", {"beam_size": 0}, InvalidJobError),
        ("good", {"beam_size": "5"}, InvalidJobError),
        ("good", {"task": "summarize"}, InvalidJobError),
        ("good", {"word_timestamps": "yes"}, InvalidJobError),
        ("missing", {}, StorageNotFoundError),
        ("directory", {}, StorageNotFoundError),
        ("big_bytes", {}, InvalidJobError),
    ],
    ids=[
        "language", "response_format", "negative_temperature", "text_temperature", "beam_size_0",
        "beam_size_text", "task", "word_timestamps_text", "missing_file", "directory", "inline_over_limit",
    ],
)  # fmt: skip
def test_client_refuses_before_submitting(run: Run, source: str, options: dict[str, Any], error: type) -> None:
    sources: dict[str, Any] = {
        "good": run.inputs / "good-0.wav",
        "missing": run.inputs / "no-such.wav",
        "directory": run.inputs,
        "big_bytes": b"\0" * (run.farm.settings.inline_audio_limit + 1),
    }
    queued_before = redis.Redis.from_url(run.farm.settings.broker_url).llen(SHARED_QUEUE)
    with pytest.raises(error) as raised:
        run.farm.client.submit(sources[source], **options)
    assert str(raised.value) and "Traceback" not in str(raised.value)
    assert redis.Redis.from_url(run.farm.settings.broker_url).llen(SHARED_QUEUE) == queued_before


def _cli(run: Run, *args: str) -> subprocess.CompletedProcess[str]:
    env = worker_env(run.farm.settings)
    return subprocess.run(
        [sys.executable, "-m", "farm.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["transcribe", "{inputs}/no-such.wav"], 1, r"^error: no such file: .*no-such\.wav$"),
        (["transcribe", "{inputs}/good-0.wav", "--language", "xx"], 1, r"^error: unknown language code 'xx'"),
        (["transcribe", "{inputs}/good-0.wav", "--beam-size", "0"], 1, r"^error: beam_size must be an integer"),
        (["transcribe", "{inputs}/good-0.wav", "--format", "xml"], 2, r"Invalid value for '--format'"),
        (["transcribe", "{inputs}/notes.wav", "--beam-size", "1"], 1, rf"^error: notes\.wav: 'notes\.wav' {NOT_AUDIO}"),
        (["transcribe", "{inputs}/symlink_to_passwd.wav"], 1, rf"^error: passwd: /etc/passwd {OUTSIDE}"),
    ],
    ids=["missing_file", "unknown_language", "beam_size_0", "unknown_format", "not_audio", "symlink_escape"],
)
def test_cli_prints_one_line_and_exits_non_zero(run: Run, args: list[str], code: int, message: str) -> None:
    done = _cli(run, *(a.format(inputs=run.inputs) for a in args))
    assert done.returncode == code, done
    assert re.search(message, done.stderr, re.MULTILINE), done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_cli_submit_then_result_of_a_refused_scheme(run: Run) -> None:
    submitted = _cli(run, "submit", "ftp://example.com/a.wav")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    done = _cli(run, "result", job_id, "--timeout", "60")
    assert done.returncode == 1
    assert done.stderr.strip() == "error: unsupported audio reference scheme 'ftp': use a path or s3:// URI"


def _envelope(body: str, **extra: Any) -> bytes:
    properties = {"delivery_tag": "garbage", "body_encoding": "base64",
                  "delivery_info": {"exchange": "", "routing_key": SHARED_QUEUE}}  # fmt: skip
    return json.dumps({"body": body, "properties": properties, **extra}).encode()


# Items pushed on the queue list by hand: none is a message kombu can deliver, and the last
# one's body is no task. Each goes to the dead letters; none may stop the worker or disturb a job.
GARBAGE = [
    b"\x00 not a message {",
    b"\xff\xfe\xfd not utf-8",
    b'"just a string"',
    b"{}",
    b'{"properties": {"delivery_tag": "t"}}',
    _envelope("@@ not base64 @@"),
]
NOT_A_TASK = _envelope(
    base64.b64encode(b"not json").decode(),
    headers={"task": TRANSCRIBE_TASK, "id": "garbage-task"}, **{"content-type": "application/json"},
)  # fmt: skip


def test_garbage_on_the_queue_is_dead_lettered_and_costs_no_job(farm_settings: Settings, tmp_path: Path) -> None:
    audio = clip(tmp_path, 4.0)
    with own_farm(farm_settings, tmp_path, FARM_CONCURRENCY="2") as farm:
        before = farm.client.submit_many([audio] * 3, beam_size=1, language="en")
        redis.Redis.from_url(farm.settings.broker_url).lpush(SHARED_QUEUE, *GARBAGE, NOT_A_TASK)
        pushed_at = time.monotonic()
        after = farm.client.submit_many([audio] * 3, beam_size=1, language="en")
        statuses = wait_all(farm.client, [*before, *after], timeout=60)
        done_in = time.monotonic() - pushed_at
        assert [s.state for s in statuses] == ["succeeded"] * 6
        buried = "to the dead letters"
        wait_until(lambda: farm.logs().count(buried) == len(GARBAGE) + 1, 10, farm.logs())
        assert redis.Redis.from_url(farm.settings.broker_url).llen(DEAD_LETTER_KEY) == len(GARBAGE) + 1
        log = farm.logs()
        assert "Unrecoverable error" not in log and log.count("loaded ctranslate2 model") == 1  # no restart
        assert farm.workers[0].process.poll() is None
        runs = farm.executions()
        assert all(runs[j.id] == 1 for j in [*before, *after]), runs
    print(f"garbage on the queue: {len(GARBAGE) + 1} items dead-lettered, 6/6 jobs done {done_in:.1f} s after the push")
