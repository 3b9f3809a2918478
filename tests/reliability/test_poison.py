"""Poison messages: an envelope that kombu or Celery cannot read goes to ``farm.dead``; no worker process dies.

Issue 16: ``headers.timelimit: "soon"`` raised inside the consumer loop, kombu restored the
message, the next process crashed on it too, and after five restarts the farm was gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from kombu import Connection
from kombu.transport.virtual import Message

from farm.config import Settings
from farm.constants import DEAD_LETTER_KEY, SHARED_QUEUE, TRANSCRIBE_TASK
from farm.queue.dead_letters import newest
from farm.queue.envelope import UnreadableEnvelopeError, check_envelope
from tests.conftest import ROOT, worker_env
from tests.reliability.conftest import Farm, celery_processes, own_farm, size, wait_all, wait_until
from tests.reliability.envelopes import POISON, envelope, fuzzed_envelopes, fuzzed_items
from tests.reliability.media import clip

LOADED = "loaded ctranslate2 model"


def celery_reads(payload: dict[str, Any]) -> None:
    """Read ``payload`` the way kombu's Redis transport and Celery's worker do before a job runs."""
    from celery.worker.request import Request
    from kombu.transport.redis import dumps

    from tasks.app import app
    from tasks.transcribe import transcribe

    with Connection("memory://") as connection:
        message = Message(payload, channel=connection.default_channel)
        dumps([message._raw, message.delivery_info["exchange"], message.delivery_info["routing_key"]])
        hash(message.delivery_tag)  # kombu's QoS keys its deliveries by it
        request = Request(message, app=app, task=transcribe, hostname="probe")
        _hard, _soft = request.time_limits  # what execute_using_pool unpacks
        assert request.id and request.name and (request.eta is None or request.eta.year)
        request.revoked()  # compares expires with now


def test_the_real_envelope_passes() -> None:
    check_envelope(envelope())
    celery_reads(envelope())


@pytest.mark.parametrize("changes", POISON.values(), ids=POISON.keys())
def test_the_poison_envelopes_are_refused_with_a_reason(changes: dict[str, Any]) -> None:
    with pytest.raises(UnreadableEnvelopeError) as refused:
        check_envelope(envelope(**changes))
    assert str(refused.value) and "\n" not in str(refused.value)


@settings(max_examples=size("ENVELOPE_EXAMPLES", 400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzzed_envelopes())
def test_whatever_passes_the_checks_celery_can_read(payload: dict[str, Any]) -> None:
    try:
        check_envelope(payload)
    except UnreadableEnvelopeError:
        return
    celery_reads(payload)


# --- against a live worker ---------------------------------------------------------------


@pytest.fixture(scope="module")
def poisoned_farm(farm_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    directory = tmp_path_factory.mktemp("poison")
    with own_farm(farm_settings, directory, FARM_CONCURRENCY="2") as farm:
        yield farm


def _push(farm: Farm, *items: bytes) -> None:
    redis.Redis.from_url(farm.settings.broker_url).lpush(SHARED_QUEUE, *items)


def _queue_empty(farm: Farm) -> bool:
    return redis.Redis.from_url(farm.settings.broker_url).llen(SHARED_QUEUE) == 0


def _assert_never_restarted(farm: Farm, pid: int) -> None:
    worker = farm.workers[0]
    assert worker.process.poll() is None, worker.output()
    assert celery_processes(worker)[0].pid == pid, "the Celery process was replaced"
    assert worker.output().count(LOADED) == 1 and "Unrecoverable error" not in worker.output()


@pytest.mark.slow
def test_poison_envelopes_go_to_the_dead_letters_and_jobs_go_on(poisoned_farm: Farm, tmp_path: Path) -> None:
    farm = poisoned_farm
    pid = celery_processes(farm.workers[0])[0].pid
    audio = clip(tmp_path, 3.0)
    before = len(newest(redis.Redis.from_url(farm.settings.broker_url), 10_000))
    first = farm.client.submit_many([audio] * 2, beam_size=1, language="en")
    _push(farm, *(json.dumps(envelope(**changes)).encode() for changes in POISON.values()))
    then = farm.client.submit_many([audio] * 2, beam_size=1, language="en")
    statuses = wait_all(farm.client, [*first, *then], timeout=300)
    assert [s.state for s in statuses] == ["succeeded"] * 4
    letters = newest(redis.Redis.from_url(farm.settings.broker_url), 10_000)
    assert len(letters) - before == len(POISON), letters
    reasons = " | ".join(letter.reason for letter in letters[: len(POISON)])
    for field in ("timelimit", "delivery_tag", "body_encoding", "headers"):
        assert field in reasons, reasons
    _assert_never_restarted(farm, pid)


@pytest.mark.slow
def test_farm_dead_letters_lists_them(poisoned_farm: Farm) -> None:
    _push(poisoned_farm, json.dumps(envelope(**POISON["timelimit_text"])).encode())
    wait_until(lambda: _queue_empty(poisoned_farm), 60, "the worker never took the item")
    shown = subprocess.run(
        [sys.executable, "-m", "farm.cli", "dead-letters", "--limit", "1"],
        env=worker_env(poisoned_farm.settings), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "timelimit" in shown.stdout and "soon" in shown.stdout and shown.stdout.count("\n") >= 1


@pytest.mark.slow
@settings(max_examples=size("FUZZ_ENVELOPES", 60), deadline=None, suppress_health_check=list(HealthCheck))
@given(item=fuzzed_items())
def test_fuzzed_envelopes_never_stop_a_live_worker(poisoned_farm: Farm, item: bytes) -> None:
    farm = poisoned_farm
    pid = celery_processes(farm.workers[0])[0].pid
    _push(farm, item)
    wait_until(lambda: _queue_empty(farm), 60, f"the worker never took {item!r}")
    time.sleep(0.05)  # the consumer reads the item right after popping it
    _assert_never_restarted(farm, pid)


@pytest.mark.slow
def test_good_jobs_still_succeed_after_the_fuzzing(poisoned_farm: Farm, tmp_path: Path) -> None:
    audio = clip(tmp_path, 3.0)
    jobs = poisoned_farm.client.submit_many([audio] * 3, beam_size=1, language="en")
    assert [s.state for s in wait_all(poisoned_farm.client, jobs, timeout=300)] == ["succeeded"] * 3
    assert redis.Redis.from_url(poisoned_farm.settings.broker_url).llen(DEAD_LETTER_KEY) > 0


@pytest.mark.slow
def test_a_job_id_that_is_a_path_is_refused_whatever_the_roots(poisoned_farm: Farm, tmp_path: Path) -> None:
    # Issue 16: task_id '../../escaped-job' with a local output wrote escaped-job.txt two levels up
    # (output_roots empty, as shipped). The worker now refuses the id before the job runs.
    audio = clip(tmp_path, 3.0)
    output = tmp_path / "results" / "deeper"
    message = {"audio": str(audio), "options": {"beam_size": 1}, "output": str(output), "formats": ["txt"]}
    app = poisoned_farm.client.app
    escaped = app.send_task(TRANSCRIBE_TASK, args=[message], task_id="../../escaped-job", queue=SHARED_QUEUE)
    good = app.send_task(TRANSCRIBE_TASK, args=[message], queue=SHARED_QUEUE)
    good.get(timeout=300)
    wait_until(
        lambda: escaped.ready() or _refused(poisoned_farm, "'../../escaped-job'"), 300, "neither ran nor refused"
    )
    assert not escaped.ready() and _refused(poisoned_farm, "job ids must match")
    assert not list(tmp_path.rglob("escaped-job*"))
    assert (output / f"{good.id}.txt").is_file()


def _refused(farm: Farm, text: str) -> bool:
    return any(text in letter.reason for letter in newest(redis.Redis.from_url(farm.settings.broker_url), 10))
