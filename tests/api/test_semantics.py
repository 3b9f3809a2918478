"""Job semantics through the API on a Redis no worker consumes: known ids, cancel, idempotency, 504s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import httpx
import openai
import pytest
import redis

from farm.api import create_app
from farm.client import Client
from farm.config import Settings
from farm.constants import SHARED_QUEUE
from farm.io.from_settings import outbox
from farm.io.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, build, verify_signature
from farm.serve.redis_server import start_redis
from tests.api.conftest import TOKEN
from tests.api.servers import WEBHOOK_SECRET, serve_app, webhook_receiver
from tests.conftest import EVAL

JFK_MP3 = EVAL / "whisper_cpp" / "jfk.mp3"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WAIT_S = 1  # api_wait_s: with no worker, every synchronous request times out


@dataclass
class LonelyApi:
    settings: Settings
    url: str
    http: httpx.Client

    def queued(self) -> int:
        return int(redis.Redis.from_url(self.settings.broker_url).llen(SHARED_QUEUE))


@pytest.fixture()
def lonely(api_settings: Settings) -> Iterator[LonelyApi]:
    server = start_redis()
    settings = replace(api_settings, broker_url=server.url, result_backend=server.url, api_wait_s=WAIT_S)
    try:
        with serve_app(create_app(settings)) as url, httpx.Client(base_url=url, headers=AUTH, timeout=60) as http:
            yield LonelyApi(settings, url, http)
    finally:
        server.stop()


def test_unknown_ids_are_404_and_jobs_from_any_producer_are_known(lonely: LonelyApi) -> None:
    missing = lonely.http.get("/v1/jobs/not-a-job")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
    client = Client(lonely.settings)  # like `farm submit`: not through the API
    try:
        job = client.submit(JFK_MP3, beam_size=1)
    finally:
        client.close()
    known = lonely.http.get(f"/v1/jobs/{job.id}")
    assert known.status_code == 200 and known.json()["status"] == "queued"
    assert lonely.http.delete("/v1/jobs/not-a-job").status_code == 404


def test_cancel_holds_and_the_result_says_so_once(lonely: LonelyApi) -> None:
    job_id = lonely.http.post("/v1/jobs", data={"uri": "s3://api-in/calls/jfk.flac"}).json()["id"]
    cancelled = lonely.http.delete(f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert lonely.http.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    result = lonely.http.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 409 and result.json()["error"]["message"] == f"job {job_id} was cancelled"
    again = lonely.http.delete(f"/v1/jobs/{job_id}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_cancellable"


def test_jobs_with_the_same_idempotency_key_are_one_job(lonely: LonelyApi) -> None:
    form = {"uri": "s3://api-in/calls/jfk.flac"}
    first = lonely.http.post("/v1/jobs", data=form, headers={"Idempotency-Key": "k-1"})
    again = lonely.http.post("/v1/jobs", data=form, headers={"Idempotency-Key": "k-1"})
    by_form = lonely.http.post("/v1/jobs", data=form | {"idempotency_key": "k-2"})
    by_form_again = lonely.http.post("/v1/jobs", data=form | {"idempotency_key": "k-2"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert by_form_again.json()["id"] == by_form.json()["id"] != first.json()["id"]
    assert lonely.queued() == 2
    listed = lonely.http.get("/v1/jobs").json()["data"]
    assert sorted(entry["id"] for entry in listed) == sorted({first.json()["id"], by_form.json()["id"]})


def test_sdk_retries_after_a_504_queue_the_audio_once(lonely: LonelyApi) -> None:
    # The SDK retries a 504 twice by default, resending the upload. With an Idempotency-Key
    # the retries wait for the same job; without one the farm tells the SDK not to retry.
    sdk = openai.OpenAI(base_url=f"{lonely.url}/v1", api_key=TOKEN, max_retries=2, timeout=60)
    with pytest.raises(openai.InternalServerError, match="did not finish") as keyed, open(JFK_MP3, "rb") as audio:
        sdk.audio.transcriptions.create(file=audio, model="whisper-1", extra_headers={"Idempotency-Key": "call-1"})
    assert keyed.value.status_code == 504 and keyed.value.response.headers["x-should-retry"] == "true"
    assert lonely.queued() == 1
    with pytest.raises(openai.InternalServerError) as plain, open(JFK_MP3, "rb") as audio:
        sdk.audio.transcriptions.create(file=audio, model="whisper-1")
    assert plain.value.response.headers["x-should-retry"] == "false"
    assert lonely.queued() == 2
    assert "/v1/jobs/" in plain.value.message


def test_the_api_sends_webhooks_left_in_the_outbox(lonely: LonelyApi) -> None:
    # No worker is up: the API drains the outbox, retrying a failed attempt with the same id.
    with webhook_receiver() as receiver:
        receiver.statuses = [500]
        pending = outbox(lonely.settings)
        delivery_id = pending.put(build(receiver.url, {"id": "j-1", "event": "job.succeeded"}, ""), signed=True)
        calls = receiver.wait_for(2, timeout=60)
    assert [call.headers[DELIVERY_HEADER] for call in calls] == [delivery_id, delivery_id]
    assert all(verify_signature(WEBHOOK_SECRET, call.body, call.headers[SIGNATURE_HEADER]) for call in calls)
    deadline = time.monotonic() + 10
    while pending.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pending.pending() == 0


def test_an_english_only_model_refuses_at_once(lonely: LonelyApi) -> None:
    form = {"uri": "s3://api-in/calls/jfk.flac"}
    german = lonely.http.post("/v1/jobs", data=form | {"language": "de"})
    translated = lonely.http.post("/v1/jobs", data=form | {"task": "translate"})
    assert german.status_code == translated.status_code == 400
    assert "English-only" in german.json()["error"]["message"] and lonely.queued() == 0
