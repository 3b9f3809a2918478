"""The chart as shipped, run as separate pods: the API and a worker share only Redis and S3.

Each pod is started from what ``helm template`` renders (settings files, env, Secrets,
args); see tests/deploy/pods.py for how a pod is simulated without a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from farm.client import Client
from farm.config import load_settings
from farm.serve.redis_server import RedisServer, free_port, start_redis
from tests.api.servers import MotoServer, start_moto, wait_for_http
from tests.conftest import EVAL, JFK_PHRASE, normalise
from tests.deploy.chart import PREFIX, find, render
from tests.deploy.pods import Cluster, Pod, make_pod

pytestmark = pytest.mark.slow

JFK_MP3 = EVAL / "whisper_cpp" / "jfk.mp3"  # 76 kB: under inline_audio_limit
JFK_WAV = EVAL / "whisper_cpp" / "jfk.wav"  # 352 kB: over it
TOKEN = "pod-token-0123456789"
BUCKET = "farm-staging"
# This machine has no GPU and no large-v3 weights: the worker pod serves the CPU with the
# packaged tiny.en, as an operator's extraEnv would say. Nothing else differs from the render.
ON_THIS_MACHINE = {"FARM_DEVICES": "cpu", "FARM_MODEL": "tiny.en", "FARM_CPU_WORKERS": "1", "FARM_CPU_THREADS": "2"}
WORKER_START_S = 300  # model load on a loaded 2-core machine; a pod's startupProbe allows 15 min
API_START_S = 300  # generous: the test machine is shared and often far over its 2 cores


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = start_moto()
    server.s3().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def operator_values(moto: MotoServer, **more: Any) -> dict[str, Any]:
    """Defaults plus a token Secret and an S3 staging bucket (credentials from a Secret)."""
    s3_keys = [
        {"name": f"FARM_S3_{kind}", "valueFrom": {"secretKeyRef": {"name": "farm-s3", "key": key}}}
        for kind, key in (("ACCESS_KEY_ID", "id"), ("SECRET_ACCESS_KEY", "secret"))
    ]
    settings = {"staging_bucket": BUCKET, "s3_endpoint_url": moto.url, "s3_region": "us-east-1"}
    values: dict[str, Any] = {
        "api": {"auth": {"existingSecret": "farm-token"}},
        "settings": settings | {"s3_addressing_style": "path"},
        "extraEnv": s3_keys,
    }
    return values | more


def cluster(docs: list[dict[str, Any]], redis: RedisServer, claims: dict[str, Path] | None = None) -> Cluster:
    secrets = {"farm-token": {"token": TOKEN}, "farm-s3": {"id": "testing", "secret": "testing"}}
    services = {f"{PREFIX}-redis:6379": f"127.0.0.1:{redis.port}"}
    return Cluster(docs, secrets, claims or {}, services)


def api_pod(world: Cluster, root: Path) -> tuple[Pod, str]:
    port = free_port()  # pods have their own network; here they share one, so each gets a port
    pod = make_pod(world, find(world.docs, "Deployment", f"{PREFIX}-api"), root, FARM_API_PORT=str(port))
    pod.env["FARM_API_HOST"] = "127.0.0.1"
    pod.start()
    assert pod.process is not None
    wait_for_http(f"http://127.0.0.1:{port}/healthz", pod.process, timeout=API_START_S)
    return pod, f"http://127.0.0.1:{port}"


def worker_pod(world: Cluster, root: Path, redis: RedisServer, group: str = "gpu") -> Pod:
    deployment = find(world.docs, "Deployment", f"{PREFIX}-worker-{group}")
    pod = make_pod(world, deployment, root, **ON_THIS_MACHINE).start()
    client = Client(replace(load_settings(), broker_url=redis.url, result_backend=redis.url))
    deadline = time.monotonic() + WORKER_START_S
    try:
        while not client.workers(timeout=1.0):
            assert pod.process is not None and pod.process.poll() is None, pod.output()
            assert time.monotonic() < deadline, f"the worker pod did not start:\n{pod.output()}"
    finally:
        client.close()
    return pod


@pytest.fixture(scope="module")
def pods(
    helm_bin: Path, tmp_path_factory: pytest.TempPathFactory, redis: RedisServer, moto: MotoServer
) -> Iterator[tuple[Cluster, Pod]]:
    base = tmp_path_factory.mktemp("pods")
    world = cluster(render(helm_bin, base, operator_values(moto)), redis)
    worker = worker_pod(world, base / "worker", redis)
    try:
        yield world, worker
    finally:
        worker.stop()


def sdk_transcribe(url: str, audio: Path) -> str:
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0, timeout=600)
    with open(audio, "rb") as file:
        return sdk.audio.transcriptions.create(file=file, model="whisper-1", extra_body={"beam_size": 1}).text


def test_openai_sdk_through_separate_pods_with_a_staging_bucket(
    pods: tuple[Cluster, Pod], moto: MotoServer, tmp_path: Path
) -> None:
    world, worker = pods
    api, url = api_pod(world, tmp_path / "api")
    try:
        assert JFK_PHRASE in normalise(sdk_transcribe(url, JFK_WAV))
    finally:
        api.stop()
    assert str(tmp_path / "api") not in worker.output()  # the worker never saw an API pod path
    # The synchronous route removes the staged copy once its job has ended.
    assert moto.s3().list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_without_a_bucket_small_uploads_travel_inline_and_large_ones_get_a_clear_413(
    helm_bin: Path, pods: tuple[Cluster, Pod], redis: RedisServer, tmp_path: Path
) -> None:
    docs = render(helm_bin, tmp_path, {"api": {"auth": {"existingSecret": "farm-token"}}})
    api, url = api_pod(cluster(docs, redis), tmp_path / "api")
    try:
        assert JFK_PHRASE in normalise(sdk_transcribe(url, JFK_MP3))
        files = {"file": ("jfk.wav", JFK_WAV.read_bytes())}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        refused = httpx.post(
            f"{url}/v1/audio/transcriptions", data={"model": "whisper-1"}, files=files, headers=headers
        )
    finally:
        api.stop()
    assert refused.status_code == 413, refused.text
    assert "staging_bucket or upload_dir" in refused.json()["error"]["message"]


def test_shared_upload_volume_carries_large_uploads(helm_bin: Path, tmp_path: Path) -> None:
    values = {"api": {"auth": {"existingSecret": "farm-token"}}, "uploads": {"sharedVolume": {"enabled": True}}}
    docs = render(helm_bin, tmp_path, values)
    claim = tmp_path / "claim"
    claim.mkdir()
    own = start_redis()  # a release of its own: only workers that mount the claim take its jobs
    world = cluster(docs, own, {f"{PREFIX}-uploads": claim})
    worker = worker_pod(world, tmp_path / "worker", own)
    api, url = api_pod(world, tmp_path / "api")
    try:
        assert JFK_PHRASE in normalise(sdk_transcribe(url, JFK_WAV))
    finally:
        api.stop()
        worker.stop()
        own.stop()
    assert not any(claim.rglob("*.wav"))  # removed once the job ended


def test_api_starts_with_the_default_values_and_the_generated_token(
    helm_bin: Path, redis: RedisServer, tmp_path: Path
) -> None:
    docs = render(helm_bin, tmp_path)
    secret = find(docs, "Secret", f"{PREFIX}-api-token")
    assert "api_token" not in find(docs, "ConfigMap", f"{PREFIX}-settings")["data"]["settings.local.toml"]
    api, url = api_pod(cluster(docs, redis), tmp_path / "api")
    try:
        token = Cluster(docs).secret(secret["metadata"]["name"], "token")
        assert len(token) >= 32
        assert httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.get(f"{url}/v1/jobs").status_code == 401
    finally:
        api.stop()


def test_an_upload_outlives_a_timed_out_request_until_its_job_ends(
    helm_bin: Path, redis: RedisServer, tmp_path: Path
) -> None:
    # A release of its own (own Redis) whose API gives up after 3 s while no worker runs.
    values = {
        "api": {"auth": {"existingSecret": "farm-token"}},
        "uploads": {"sharedVolume": {"enabled": True}},
        "settings": {"api_wait_s": 3, "inline_audio_limit": 0},
    }
    docs = render(helm_bin, tmp_path, values)
    own = start_redis()
    claim = tmp_path / "claim"
    claim.mkdir()
    world = cluster(docs, own, {f"{PREFIX}-uploads": claim})
    api, url = api_pod(world, tmp_path / "api")
    worker: Pod | None = None
    try:
        files = {"file": ("jfk.mp3", JFK_MP3.read_bytes())}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        late = httpx.post(
            f"{url}/v1/audio/transcriptions", data={"model": "whisper-1"}, files=files, headers=headers, timeout=60
        )
        assert late.status_code == 504, late.text
        job_id = late.json()["error"]["message"].split()[1]
        assert any(claim.rglob("jfk.mp3")), "the upload went with the request"
        worker = worker_pod(world, tmp_path / "worker", own)
        info = _wait_done(url, job_id, headers)
    finally:
        api.stop()
        if worker is not None:
            worker.stop()
        own.stop()
    assert info["status"] == "succeeded", (info, worker.output() if worker else "")


def _wait_done(url: str, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        info: dict[str, Any] = httpx.get(f"{url}/v1/jobs/{job_id}", headers=headers).json()
        if info["status"] in ("succeeded", "failed", "cancelled"):
            return info
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never ended")
