"""Object storage against a real S3-compatible server (moto_server), through the worker too."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
import srt

from farm.client import Client
from farm.config import Settings
from farm.errors import (
    JobFailedError,
    PermanentError,
    RetryableError,
    StorageAccessError,
    StorageNotFoundError,
    StorageUnavailableError,
)
from farm.io.from_settings import s3_config
from farm.io.roots import Roots
from farm.io.storage import LocalStorage, S3Config, S3Storage
from farm.serve.redis_server import free_port
from tests.api.servers import REGION, MotoServer, shared_moto, start_moto
from tests.conftest import JFK, JFK_PHRASE, ROOT, WorkerProcess, normalise, worker_env


@pytest.fixture(scope="session")
def moto_server() -> MotoServer:
    return shared_moto()


@pytest.fixture(scope="module")
def storage(moto_server: MotoServer) -> S3Storage:
    s3 = moto_server.s3()
    for bucket in ("store-in", "store-out", "store-staging"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="store-in", Key="talks/jfk.flac", Body=JFK.read_bytes())
    return S3Storage(S3Config(moto_server.url, REGION, "testing", "testing", "path", timeout_s=5))


def test_write_read_and_presign(storage: S3Storage) -> None:
    storage.write("s3://store-out/notes/a.txt", b"hello\n", "text/plain")
    assert storage.read("s3://store-out/notes/a.txt") == b"hello\n"
    with urllib.request.urlopen(storage.presign("s3://store-out/notes/a.txt", 60), timeout=10) as response:
        assert response.read() == b"hello\n"  # no credentials in this request


def test_missing_bucket_or_key_is_permanent(storage: S3Storage) -> None:
    for reference in ("s3://no-such-bucket/a.wav", "s3://store-in/talks/missing.flac"):
        with pytest.raises(StorageNotFoundError, match="no such object") as caught:
            storage.read(reference)
        assert isinstance(caught.value, PermanentError)
    with pytest.raises(StorageNotFoundError):
        storage.write("s3://no-such-bucket/out.srt", b"1", "text/plain")


def test_access_denied_is_permanent() -> None:
    # This moto_server checks signatures after the first three (set-up) requests.
    server = start_moto(INITIAL_NO_AUTH_ACTION_COUNT="3")
    try:
        users = boto3.client("iam", endpoint_url=server.url, region_name=REGION, **_keys("testing", "testing"))
        users.create_user(UserName="nobody")
        key = users.create_access_key(UserName="nobody")["AccessKey"]
        server.s3().create_bucket(Bucket="locked")
        powerless = S3Storage(S3Config(server.url, REGION, key["AccessKeyId"], key["SecretAccessKey"], "path"))
        with pytest.raises(StorageAccessError, match="AccessDenied"):
            powerless.read("s3://locked/secret.wav")
        stranger = S3Storage(S3Config(server.url, REGION, "AKIAUNKNOWN", "nope", "path"))
        with pytest.raises(StorageAccessError, match="InvalidAccessKeyId"):
            stranger.write("s3://locked/x.srt", b"1", "text/plain")
    finally:
        server.stop()


def _keys(key_id: str, secret: str) -> dict[str, str]:
    return {"aws_access_key_id": key_id, "aws_secret_access_key": secret}


@pytest.fixture()
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers: a store that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def test_timeouts_and_refused_connections_are_retryable(silent_server: int) -> None:
    for port in (silent_server, free_port()):
        config = S3Config(f"http://127.0.0.1:{port}", REGION, "k", "s", "path", timeout_s=0.5, max_attempts=1)
        with pytest.raises(StorageUnavailableError, match="storage unavailable") as caught:
            S3Storage(config).read("s3://bucket/key.wav")
        assert isinstance(caught.value, RetryableError)


def test_settings_fill_the_s3_config_and_hide_secrets(farm_settings: Settings, moto_server: MotoServer) -> None:
    config = s3_config(farm_settings)
    assert (config.endpoint_url, config.region, config.addressing_style) == (moto_server.url, REGION, "path")
    assert config.secret_access_key == "testing" and "testing" not in repr(config)
    assert "testing" not in repr(farm_settings)
    assert farm_settings.public()["s3_secret_access_key"] == "***"


def test_local_storage_writes_and_refuses_clearly(tmp_path: Path) -> None:
    LocalStorage(Roots()).write(str(tmp_path / "deep" / "a.txt"), b"x", "text/plain")
    assert (tmp_path / "deep" / "a.txt").read_bytes() == b"x"
    with pytest.raises(StorageNotFoundError):
        LocalStorage(Roots()).read(str(tmp_path / "missing.wav"))


@pytest.mark.slow
def test_one_cli_command_turns_an_s3_object_into_an_srt_in_s3(
    farm_settings: Settings, worker: WorkerProcess, storage: S3Storage
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "farm.cli", "transcribe", "s3://store-in/talks/jfk.flac",
         "--format", "srt", "--output", "s3://store-out/subtitles", "--beam-size", "1"],
        env=worker_env(farm_settings), cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (uri,) = done.stdout.split()
    assert uri.startswith("s3://store-out/subtitles/") and uri.endswith(".srt")
    cues = list(srt.parse(storage.read(uri).decode()))
    assert JFK_PHRASE in normalise(" ".join(cue.content for cue in cues))


@pytest.mark.slow
def test_client_stages_local_files_and_presigns_results(
    farm_settings: Settings, worker: WorkerProcess, storage: S3Storage
) -> None:
    staged = Client(replace(farm_settings, upload_to_staging=True, staging_bucket="store-staging"))
    try:
        job = staged.submit(JFK, output="s3://store-out/staged", formats=["vtt", "json"], beam_size=1)
        result = job.result(timeout=120)
        urls = staged.presigned_urls(result)
    finally:
        staged.close()
    assert result["source"] == "jfk.flac"
    assert result["outputs"] == {fmt: f"s3://store-out/staged/{job.id}.{fmt}" for fmt in ("vtt", "json")}
    with urllib.request.urlopen(urls["vtt"], timeout=10) as response:
        assert response.read().startswith(b"WEBVTT")
    staging_keys = [o["Key"] for o in shared_moto().s3().list_objects_v2(Bucket="store-staging")["Contents"]]
    assert len(staging_keys) == 1 and staging_keys[0].endswith("/jfk.flac")


@pytest.mark.slow
def test_outputs_to_a_shared_directory_and_to_a_missing_bucket(client: Client, tmp_path: Path) -> None:
    written = client.submit(JFK, output=str(tmp_path), formats=["txt", "tsv"], beam_size=1)
    missing = client.submit(JFK, output="s3://no-such-bucket/out", formats=["srt"], beam_size=1)
    outputs = written.result(timeout=120)["outputs"]
    assert outputs == {"txt": f"{tmp_path}/{written.id}.txt", "tsv": f"{tmp_path}/{written.id}.tsv"}
    assert JFK_PHRASE in normalise((tmp_path / f"{written.id}.txt").read_text())
    with pytest.raises(JobFailedError, match="no such object: s3://no-such-bucket/out/"):
        missing.result(timeout=120)
    assert missing.status().error_type == "StorageNotFoundError"
