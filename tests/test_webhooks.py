"""Webhooks: HMAC-signed POSTs to a real local HTTP receiver, retried with backoff."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest

from farm.client import Client
from farm.config import Settings
from farm.errors import JobFailedError
from farm.io.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, build, deliver, sign, verify_signature
from farm.serve.redis_server import free_port
from tests.api.servers import WEBHOOK_SECRET, webhook_receiver
from tests.conftest import JFK, JFK_PHRASE, normalise, own_farm


def test_signature_checks_secret_body_and_age() -> None:
    body = b'{"id":"1"}'
    header = sign("s3cret", body, int(time.time()))
    assert verify_signature("s3cret", body, header)
    assert not verify_signature("other", body, header)
    assert not verify_signature("s3cret", body + b" ", header)
    assert not verify_signature("s3cret", body, sign("s3cret", body, int(time.time()) - 3600))
    assert not verify_signature("s3cret", body, "garbage")


def test_retries_with_doubling_backoff_until_accepted() -> None:
    slept: list[float] = []
    with webhook_receiver() as receiver:
        receiver.statuses = [503, 429, 200]
        hook = build(receiver.url + "/hook", {"event": "job.succeeded", "id": "x"}, "s3cret")
        assert deliver(hook, max_attempts=5, sleep=slept.append)
        calls = receiver.wait_for(3)
    assert slept == [1.0, 2.0]
    assert len({call.headers[DELIVERY_HEADER] for call in calls}) == 1  # one event, three attempts
    assert all(verify_signature("s3cret", call.body, call.headers[SIGNATURE_HEADER]) for call in calls)


def test_a_client_error_is_final_and_attempts_are_bounded() -> None:
    slept: list[float] = []
    with webhook_receiver() as receiver:
        receiver.statuses = [404]
        assert not deliver(build(receiver.url, {"event": "job.failed"}, ""), 5, slept.append)
        assert len(receiver.wait_for(1)) == 1 and SIGNATURE_HEADER not in receiver.deliveries[0].headers
    nobody = build(f"http://127.0.0.1:{free_port()}/hook", {"event": "job.failed"}, "s3cret")
    assert not deliver(nobody, 3, slept.append)
    assert slept == [1.0, 2.0]


@pytest.mark.slow
def test_worker_calls_back_signed_and_retries_a_failed_delivery(client: Client) -> None:
    with webhook_receiver() as receiver:
        receiver.statuses = [500]  # the first attempt fails; the worker tries again after 1 s
        job = client.submit(JFK, callback_url=f"{receiver.url}/hooks?ref=42", beam_size=1)
        calls = receiver.wait_for(2, timeout=60)
    assert job.status().state == "succeeded"
    assert calls[0].body == calls[1].body and calls[1].path == "/hooks?ref=42"
    assert verify_signature(WEBHOOK_SECRET, calls[1].body, calls[1].headers[SIGNATURE_HEADER])
    event = calls[1].json()
    assert (event["id"], event["event"], event["status"]) == (job.id, "job.succeeded", "succeeded")
    assert calls[1].headers[EVENT_HEADER] == "job.succeeded"
    assert JFK_PHRASE in normalise(event["result"]["text"])


@pytest.mark.slow
def test_worker_calls_back_once_when_a_job_fails(client: Client, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.wav"
    bogus.write_text("not a recording\n" * 50)
    with webhook_receiver() as receiver:
        job = client.submit(bogus, callback_url=receiver.url)
        with pytest.raises(JobFailedError):
            job.result(timeout=60)
        (call,) = receiver.wait_for(1)
        time.sleep(0.5)  # room for a duplicate to show up
        assert len(receiver.deliveries) == 1
    event = call.json()
    assert (event["id"], event["status"]) == (job.id, "failed") and "not decodable audio" in event["error"]
    assert verify_signature(WEBHOOK_SECRET, call.body, call.headers[SIGNATURE_HEADER])


@pytest.mark.slow
def test_a_webhook_survives_a_worker_killed_right_after_its_job(farm_settings: Settings, tmp_path: Path) -> None:
    with webhook_receiver() as receiver, own_farm(farm_settings, tmp_path) as farm:
        receiver.statuses = [503]  # the first attempt fails; the retry is due a second later
        job = farm.client.submit(JFK, beam_size=1, callback_url=receiver.url)
        (first,) = receiver.wait_for(1, timeout=300)  # the job has ended
        celery = psutil.Process(farm.workers[0].process.pid).children(recursive=True)
        for process in celery:
            process.send_signal(signal.SIGKILL)  # `farm worker` starts a fresh Celery process
        calls = receiver.wait_for(2, timeout=180)
        time.sleep(3)  # room for a duplicate
        calls = list(receiver.deliveries)
    assert [call.json()["id"] for call in calls] == [job.id, job.id], [c.json() for c in calls]
    assert calls[0].body == calls[1].body and first.headers[DELIVERY_HEADER] == calls[1].headers[DELIVERY_HEADER]
    assert verify_signature(WEBHOOK_SECRET, calls[1].body, calls[1].headers[SIGNATURE_HEADER])
