"""Async jobs through the REST API: upload or S3 URI, follow, fetch, list, cancel, webhooks."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import srt

from farm.api import create_app
from farm.config import Settings
from farm.io.webhooks import SIGNATURE_HEADER, verify_signature
from farm.serve.redis_server import start_redis
from tests.api.conftest import TOKEN
from tests.api.servers import WEBHOOK_SECRET, MotoServer, serve_app, webhook_receiver
from tests.conftest import EVAL, JFK, JFK_PHRASE, normalise

pytestmark = pytest.mark.slow

JFK_MP3 = EVAL / "whisper_cpp" / "jfk.mp3"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def wait_done(http: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        if info["status"] in ("succeeded", "failed", "cancelled"):
            return info
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {info['status']}")


def upload(http: httpx.Client, content: bytes, name: str = "jfk.mp3", **form: Any) -> httpx.Response:
    return http.post("/v1/jobs", files={"file": (name, content)}, data={"beam_size": "1", **form})


def test_a_running_job_shows_its_text_so_far(http: httpx.Client, long_clip: Path) -> None:
    job = upload(http, long_clip.read_bytes(), name=long_clip.name).json()
    running = []
    deadline = time.monotonic() + 300
    while (info := http.get(f"/v1/jobs/{job['id']}").json())["status"] in ("queued", "started"):
        assert time.monotonic() < deadline, info
        running.append(info)
        time.sleep(0.1)
    text = http.get(f"/v1/jobs/{job['id']}/result").json()["text"]
    partial = [i for i in running if i["text"] and 0 < i["progress"] < 100]
    assert partial and all(text[i["text_offset"] :].startswith(i["text"]) for i in partial)
    assert info["text"] == "" and info["text_offset"] == 0  # once done, the result has it


def test_upload_follow_fetch_and_list(http: httpx.Client) -> None:
    created = upload(http, JFK_MP3.read_bytes())
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] in ("queued", "started") and job["name"] == "jfk.mp3"
    info = wait_done(http, job["id"])
    assert info["status"] == "succeeded" and info["progress"] == 100.0 and info["error"] is None

    subtitles = http.get(f"/v1/jobs/{job['id']}/result", params={"format": "srt"})
    assert subtitles.status_code == 200 and subtitles.headers["content-type"].startswith("application/x-subrip")
    assert JFK_PHRASE in normalise(" ".join(cue.content for cue in srt.parse(subtitles.text)))
    full = http.get(f"/v1/jobs/{job['id']}/result").json()
    assert full["segments"] and full["source"] == "jfk.mp3"

    listed = http.get("/v1/jobs", params={"status": "succeeded", "limit": 100}).json()["data"]
    assert job["id"] in [entry["id"] for entry in listed]
    assert job["id"] not in [entry["id"] for entry in http.get("/v1/jobs", params={"status": "failed"}).json()["data"]]
    since_later = http.get("/v1/jobs", params={"since": time.time() + 60}).json()["data"]
    assert since_later == []
    refused = http.delete(f"/v1/jobs/{job['id']}")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_cancellable"


def test_s3_uri_job_writes_outputs_and_calls_back(http: httpx.Client, moto_server: MotoServer) -> None:
    s3 = moto_server.s3()
    for bucket in ("api-in", "api-out"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="api-in", Key="calls/jfk.flac", Body=JFK.read_bytes())
    with webhook_receiver() as receiver:
        form = {"uri": "s3://api-in/calls/jfk.flac", "output": "s3://api-out/results", "callback_url": receiver.url}
        created = http.post("/v1/jobs", data={**form, "formats": ["srt", "txt"], "beam_size": "1"})
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        assert wait_done(http, job_id)["status"] == "succeeded"
        call = receiver.wait_for(1)[0]
    assert verify_signature(WEBHOOK_SECRET, call.body, call.headers[SIGNATURE_HEADER])
    assert call.json()["id"] == job_id and call.json()["status"] == "succeeded"

    outputs = http.get(f"/v1/jobs/{job_id}").json()["outputs"]
    assert set(outputs) == {"srt", "txt"} and outputs["srt"].startswith(moto_server.url)
    with urllib.request.urlopen(outputs["srt"], timeout=10) as response:  # presigned: no credentials
        cues = list(srt.parse(response.read().decode()))
    assert JFK_PHRASE in normalise(" ".join(cue.content for cue in cues))
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="api-out", Prefix="results/")["Contents"]}
    assert keys == {f"results/{job_id}.srt", f"results/{job_id}.txt"}


def test_staged_upload_reaches_worker_through_s3(api_settings: Settings, moto_server: MotoServer) -> None:
    moto_server.s3().create_bucket(Bucket="api-staging")
    staged = replace(api_settings, upload_to_staging=True, staging_bucket="api-staging")
    with serve_app(create_app(staged)) as url, httpx.Client(base_url=url, headers=AUTH, timeout=60) as http:
        job_id = upload(http, JFK_MP3.read_bytes()).json()["id"]
        assert wait_done(http, job_id)["status"] == "succeeded"
    keys = [o["Key"] for o in moto_server.s3().list_objects_v2(Bucket="api-staging")["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("uploads/") and keys[0].endswith("/jfk.mp3")


def test_bad_audio_fails_with_a_typed_error(http: httpx.Client) -> None:
    job_id = upload(http, b"a shopping list, not a recording\n" * 50, name="notes.wav").json()["id"]
    info = wait_done(http, job_id)
    assert info["status"] == "failed" and info["error_type"] == "AudioDecodeError"
    assert "notes.wav" in info["error"]
    result = http.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 409 and "failed" in result.json()["error"]["message"]


def test_cancel_a_queued_job_and_readyz_without_workers(api_settings: Settings) -> None:
    # A Redis no worker listens to: the job stays queued until it is cancelled.
    redis = start_redis()
    lonely = replace(api_settings, broker_url=redis.url, result_backend=redis.url)
    try:
        with serve_app(create_app(lonely)) as url, httpx.Client(base_url=url, headers=AUTH, timeout=30) as http:
            job_id = http.post("/v1/jobs", data={"uri": "s3://api-in/calls/jfk.flac"}).json()["id"]
            assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
            cancelled = http.delete(f"/v1/jobs/{job_id}")
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
            listed = http.get("/v1/jobs", params={"status": "cancelled"}).json()["data"]
            assert [entry["id"] for entry in listed] == [job_id]
            ready = http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["reason"] == "no worker answered a ping"
    finally:
        redis.stop()
