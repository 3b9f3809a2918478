"""The job-end hooks in process: real Redis, a real webhook receiver, real result files."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from farm.config import Settings
from farm.constants import METRICS_KEY_PREFIX
from farm.errors import StorageAccessError
from farm.io.from_settings import job_end_hooks, outbox
from farm.io.job_end import JobEnd, JobEndHooks
from farm.io.metrics import JOBS
from farm.io.outbox import Drainer
from farm.job.result import Result
from farm.job.spec import Delivery
from farm.queue.connections import RedisSettings, new_redis
from tests.api.servers import webhook_receiver

RESULT: Result = {
    "task": "transcribe", "language": "en", "language_probability": 0.99, "duration": 2.0, "text": "Hello.",
    "segments": [], "source": "a.wav", "engine": "ctranslate2", "model": "tiny.en",
    "timings": {"decode_s": 0.1, "total_s": 0.2},
}  # fmt: skip


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    (tmp_path / "results").mkdir()
    return tmp_path / "results"


@pytest.fixture()
def hooks(farm_settings: Settings, results: Path) -> Iterator[JobEndHooks]:
    settings = replace(farm_settings, output_roots=[str(results)], webhook_secret="s")
    drainer = Drainer(outbox(settings), settings.webhook_secret).start()  # as every worker runs one
    yield job_end_hooks(settings)
    drainer.stop()


def jobs_counted(settings: Settings, state: str) -> int:
    raw = new_redis(RedisSettings.from_settings(settings)).hget(METRICS_KEY_PREFIX + JOBS.name, json.dumps([state]))
    return int(raw or 0)


def test_a_job_is_written_counted_and_called_back_once(
    hooks: JobEndHooks, farm_settings: Settings, results: Path
) -> None:
    job_id, before = str(uuid.uuid4()), jobs_counted(farm_settings, "succeeded")
    with webhook_receiver() as receiver:
        delivery = Delivery(str(results), ("srt", "txt"), receiver.url + "/hook")
        end = hooks.after_job(JobEnd(job_id, delivery, result=RESULT))
        [call] = receiver.wait_for(1)
        again = hooks.after_job(JobEnd(job_id, delivery, result=RESULT))  # a redelivered job
        time.sleep(1.0)
        assert len(receiver.deliveries) == 1 and not again.first
    assert end.first and end.result is not None
    assert end.result["outputs"] == {fmt: f"{results}/{job_id}.{fmt}" for fmt in ("srt", "txt")}
    assert (results / f"{job_id}.txt").read_text() == "Hello.\n"
    assert call.json()["result"]["outputs"] == end.result["outputs"]  # the webhook saw the files
    assert jobs_counted(farm_settings, "succeeded") == before + 1


def test_parts_are_counted_and_a_failing_part_announces_its_job(hooks: JobEndHooks, farm_settings: Settings) -> None:
    parent, failed_before = str(uuid.uuid4()), jobs_counted(farm_settings, "failed")
    with webhook_receiver() as receiver:
        delivery = Delivery(callback_url=receiver.url)
        part = hooks.after_job(JobEnd(str(uuid.uuid4()), delivery, result=RESULT, part=True))  # the part's own id
        first = hooks.after_job(JobEnd(parent, delivery, error=ValueError("part 2/3: bad audio")))
        second = hooks.after_job(JobEnd(parent, delivery, error=ValueError("part 3/3: bad audio")))
        [call] = receiver.wait_for(1)
    assert not part.first and part.result is not None and "outputs" not in part.result
    assert (first.first, second.first) == (True, False)
    assert call.json()["event"] == "job.failed" and call.json()["error"] == "part 2/3: bad audio"
    assert jobs_counted(farm_settings, "failed") == failed_before + 1


def test_a_result_file_that_cannot_be_written_leaves_the_job_unannounced(hooks: JobEndHooks, tmp_path: Path) -> None:
    # The files come before the once-only guard: the task's retry may still announce the job.
    job_id, outside = str(uuid.uuid4()), tmp_path / "elsewhere"
    with pytest.raises(StorageAccessError):
        hooks.after_job(JobEnd(job_id, Delivery(str(outside), ("txt",)), result=RESULT))
    assert hooks.after_job(JobEnd(job_id, Delivery(), result=RESULT)).first


@pytest.mark.parametrize("ran", [0, 1, 2, 3])
def test_a_worker_killed_anywhere_in_the_hooks_still_gets_its_job_called_back(
    hooks: JobEndHooks, results: Path, ran: int
) -> None:
    # A worker killed after the first `ran` hooks (kill -9 leaves no later hook run), then
    # the job redelivered to another worker: the webhook must still go out, once per id.
    # With the once-only mark and the outbox write apart, a kill between them lost it.
    job_id = str(uuid.uuid4())
    with webhook_receiver() as receiver:
        delivery = Delivery(str(results), ("txt",), receiver.url + "/hook")
        JobEndHooks(hooks.hooks[:ran]).after_job(JobEnd(job_id, delivery, result=RESULT))
        hooks.after_job(JobEnd(job_id, delivery, result=RESULT))  # the redelivery, with every hook
        receiver.wait_for(1)
        time.sleep(1.0)
        ids = {call.headers["X-Farm-Delivery"] for call in receiver.deliveries}
    assert len(ids) == 1, receiver.deliveries
