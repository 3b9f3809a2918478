"""Security: JSON only, Redis password and TLS from settings, input roots, no leaked secrets.

The password and the S3 secret come from a real ``.secrets.toml`` beside a copy of
settings.toml, exactly as an operator would mount them; afterwards every place they
could leak to is searched: the worker's log, every key in Redis (results, task args,
progress), Flower's task list, the CLI's output and the errors users read.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import redis

from farm.api.registry import JobRegistry
from farm.client import Client
from farm.config import Settings, load_settings
from farm.constants import METRICS_KEY_PREFIX, SHARED_QUEUE, TRANSCRIBE_TASK
from farm.errors import BrokerUnavailableError, InvalidJobError, StorageAccessError
from farm.io.delivery import output_location
from farm.io.from_settings import roots_from
from farm.io.job_end import OnceOnly
from farm.io.metrics import JOBS, exposition
from farm.io.roots import check_local_input, check_local_output
from farm.queue.broker import celery_config
from farm.queue.connections import RedisSettings, new_redis, reachable
from farm.serve.local import flower_argv
from farm.serve.redis_server import free_port, redis_binary, start_redis
from tests.api.servers import MotoServer, start_moto, wait_for_http
from tests.conftest import ROOT, WorkerProcess
from tests.reliability.conftest import own_farm, wait_until
from tests.reliability.media import clip

REDIS_PASSWORD = "rp-" + secrets.token_hex(12)
S3_SECRET = "s3s-" + secrets.token_hex(12)
S3_KEY_ID = "AKIA" + secrets.token_hex(6).upper()


# --- JSON only ---------------------------------------------------------------------


def test_celery_speaks_json_only(farm_settings: Settings) -> None:
    config = celery_config(farm_settings)
    assert config["accept_content"] == ["json"] and config["result_accept_content"] == ["json"]
    assert config["task_serializer"] == config["result_serializer"] == "json"


@pytest.mark.slow
def test_worker_refuses_a_pickle_message(farm_settings: Settings, tmp_path: Path) -> None:
    audio = clip(tmp_path, 3.0)
    with own_farm(farm_settings, tmp_path) as farm:
        app = farm.client.app
        pickled = app.send_task(TRANSCRIBE_TASK, args=[{"audio": str(audio)}], queue=SHARED_QUEUE, serializer="pickle")
        refused = "'content-type' cannot be 'application/x-python-serialize'"  # to the dead letters, unread
        wait_until(lambda: refused in farm.logs(), 30, "not refused")
        assert farm.client.submit(audio, beam_size=1).result(timeout=60)["duration"] == 3.0  # still serving
        assert pickled.state == "PENDING"  # never ran
        assert farm.receptions()[pickled.id] == 0


# --- Redis password and S3 secret from .secrets.toml, searched for everywhere ------------


@dataclass
class SecretFarm:
    settings: Settings
    client: Client
    worker: WorkerProcess
    env: dict[str, str]
    moto: MotoServer


def _settings_dir(directory: Path, secrets_toml: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "settings.toml", directory / "settings.toml")
    (directory / ".secrets.toml").write_text(secrets_toml)
    return directory / "settings.toml"


def _env_for(settings_file: Path, **extra: str) -> dict[str, str]:
    """The environment of a process that reads everything from ``settings_file``'s layers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_BROKER", "FARM_RESULT", "FARM_S3_"))}
    return env | {"FARM_SETTINGS_FILE": str(settings_file), "FARM_DEVICES": "cpu", "FARM_CPU_WORKERS": "1"} | extra


def _start_worker(env: dict[str, str], log: Path, settings: Settings) -> WorkerProcess:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "farm.cli", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    worker = WorkerProcess(process, log)
    client = Client(settings)
    try:
        wait_until(lambda: process.poll() is None and bool(client.workers(timeout=0.5)), 120, worker.output())
    finally:
        client.close()
    return worker


def _load(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    with monkeypatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("FARM_")]:
            patch.delenv(key)
        for key, value in env.items():
            if key.startswith("FARM_"):
                patch.setenv(key, value)
        return load_settings()


@pytest.fixture(scope="module")
def secret_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretFarm]:
    base = tmp_path_factory.mktemp("secrets")
    server = start_redis(password=REDIS_PASSWORD)
    moto = start_moto()
    settings_file = _settings_dir(
        base / "conf",
        f'[default]\nbroker_url = "{server.url}"\ns3_endpoint_url = "{moto.url}"\ns3_addressing_style = "path"\n'
        f's3_access_key_id = "{S3_KEY_ID}"\ns3_secret_access_key = "{S3_SECRET}"\n',
    )
    # Task events from the start: Flower would switch them on only after its first 5 s.
    env = _env_for(settings_file, FARM_INPUT_ROOTS=f'["{base}"]', FARM_TASK_EVENTS="true")
    with pytest.MonkeyPatch.context() as patch:
        settings = _load(env, patch)
    assert settings.broker_url == server.url  # from .secrets.toml, not the environment
    worker = _start_worker(env, base / "worker.log", settings)
    client = Client(settings)
    try:
        yield SecretFarm(settings, client, worker, env, moto)
    finally:
        client.close()
        worker.stop()
        moto.stop()
        server.stop()


def _flower(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*flower_argv(port), "--address=127.0.0.1"],
            env=env | {"FLOWER_UNAUTHENTICATED_API": "true"}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/healthcheck", process)
    return process, url


def _redis_dump(url: str) -> str:
    """Every key and value in the Redis: results, task metadata, progress, queues."""
    client = redis.Redis.from_url(url)
    readers: dict[bytes | str, Any] = {
        b"string": client.get,
        b"hash": client.hgetall,
        b"list": lambda key: client.lrange(key, 0, -1),
        b"set": client.smembers,
        b"zset": lambda key: client.zrange(key, 0, -1),
    }
    return "\n".join(f"{key!r} {readers.get(client.type(key), lambda _: b'')(key)!r}" for key in client.scan_iter())


@pytest.mark.slow
def test_secrets_never_leak(secret_farm: SecretFarm, tmp_path: Path) -> None:
    flower, flower_url = _flower(secret_farm.env, tmp_path / "flower.log")
    try:
        client = secret_farm.client
        good = client.submit(clip(Path(json.loads(secret_farm.env["FARM_INPUT_ROOTS"])[0]), 3.0), beam_size=1)
        missing = client.submit("s3://no-such-bucket/a.wav", beam_size=1)
        bad = client.submit(tmp_path / "outside.wav", beam_size=1) if _write(tmp_path / "outside.wav") else None
        statuses = client.wait_all([good, missing, *([bad] if bad else [])], timeout=120)
        assert [s.state for s in statuses] == ["succeeded", "failed", "failed"], statuses
        time.sleep(1.5)  # Flower folds in the last events
        with urllib.request.urlopen(f"{flower_url}/api/tasks", timeout=10) as response:
            flower_tasks = response.read().decode()
    finally:
        flower.terminate()
        flower.wait(timeout=30)
    assert good.id in flower_tasks and "args" in flower_tasks
    cli = _cli(secret_farm.env, "config") + _cli(secret_farm.env, "config", "--json")
    cli += _cli(secret_farm.env, "status", missing.id) + _cli(secret_farm.env, "result", missing.id)
    places = {
        "worker log": secret_farm.worker.output(),
        "redis": _redis_dump(secret_farm.settings.broker_url),
        "flower": flower_tasks,
        "flower log": (tmp_path / "flower.log").read_text(errors="replace"),
        "cli": cli,
        "errors": " ".join(s.error or "" for s in statuses),
    }
    for place, text in places.items():
        for secret in (REDIS_PASSWORD, S3_SECRET):
            assert secret not in text, f"a secret leaked into the {place}"
    assert "no such object: s3://no-such-bucket/a.wav" in places["errors"]
    assert "outside the directories" in places["errors"]
    assert "***" in cli  # the settings were shown, masked


def _write(path: Path) -> bool:
    path.write_bytes(b"RIFF")
    return True


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "farm.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    return done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("password", ["wrong", ""], ids=["wrong_password", "no_password"])
def test_cli_with_a_bad_redis_password_fails_fast_and_quietly(secret_farm: SecretFarm, password: str) -> None:
    auth = f":{password}@" if password else ""
    url = secret_farm.settings.broker_url.replace(f":{REDIS_PASSWORD}@", auth)
    env = secret_farm.env | {"FARM_BROKER_URL": url, "FARM_RESULT_BACKEND": url}
    for args in (["submit", "/etc/hostname"], ["status", "0b5bb0a4-0000-4000-8000-000000000000"]):
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "farm.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1 and time.monotonic() - started < 10, done
        assert done.stderr.startswith("error: cannot reach the broker at redis://")
        assert "Traceback" not in done.stderr and REDIS_PASSWORD not in done.stderr
        assert f":{password}@" not in done.stderr


@pytest.mark.slow
def test_python_client_with_a_bad_redis_password_fails_fast(secret_farm: SecretFarm) -> None:
    url = secret_farm.settings.broker_url.replace(REDIS_PASSWORD, "wrong")
    client = Client(replace(secret_farm.settings, broker_url=url, result_backend=url))
    started = time.monotonic()
    try:
        with pytest.raises(BrokerUnavailableError):
            client.submit(b"RIFF", beam_size=1)
    finally:
        client.close()
    assert time.monotonic() - started < 10


# --- TLS (rediss://) -----------------------------------------------------------------


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing: apt-get install openssl")
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=farm-ca"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
         "-extfile", ext],
    ]  # fmt: skip
    for step in steps:
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True, timeout=60)
    return ca, cert, key


@pytest.fixture()
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca, cert, key = _certificates(tmp_path)
    port = free_port()
    argv = [
        redis_binary(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file", str(cert),
        "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no", "--save", "",
        "--appendonly", "no", "--dir", str(tmp_path),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"rediss://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: reachable(RedisSettings(url, ca_certs=str(ca)), 0.5), 15, "no TLS redis-server")
        yield url, ca
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_rediss_broker_with_a_private_ca(farm_settings: Settings, tls_redis: tuple[str, Path], tmp_path: Path) -> None:
    url, ca = tls_redis
    settings = replace(farm_settings, broker_url=url, result_backend=url, redis_tls_ca_certs=str(ca))
    assert celery_config(settings)["broker_use_ssl"] == RedisSettings.from_settings(settings).ssl_options()
    with own_farm(settings, tmp_path, redis_url=url, FARM_REDIS_TLS_CA_CERTS=str(ca)) as farm:
        result = farm.client.submit(clip(tmp_path, 3.0), beam_size=1).result(timeout=60)
    assert result["duration"] == 3.0
    # Everything else that talks to Redis goes through the same TLS settings.
    where = RedisSettings.from_settings(settings)
    assert not reachable(RedisSettings(url), 1.0)  # no CA: the private CA is not trusted
    jobs = new_redis(where).hgetall(METRICS_KEY_PREFIX + JOBS.name)
    assert jobs == {b'["succeeded"]': b"1"}  # the worker's metrics recorder reached the TLS Redis
    guard = OnceOnly(where, 60)
    assert guard.first("once-only") and not guard.first("once-only")  # the webhook guard holds
    registry = JobRegistry(where, 60)
    registry.add("job-1", "a.wav")
    assert registry.get("job-1") is not None and b"farm_jobs_total" in exposition(settings)[0]


# --- local inputs limited to the configured roots ------------------------------------------


@pytest.fixture()
def roots(tmp_path: Path, farm_settings: Settings) -> tuple[Settings, Path]:
    inside = tmp_path / "audio"
    inside.mkdir()
    (tmp_path / "secret.txt").write_text("not for transcription")
    return replace(farm_settings, input_roots=[str(inside)], max_input_mb=1), inside


def test_input_inside_a_root_is_allowed(roots: tuple[Settings, Path]) -> None:
    settings, inside = roots
    (inside / "a.wav").write_bytes(b"RIFF")
    assert check_local_input(inside / "a.wav", roots_from(settings)) == (inside / "a.wav").resolve()


@pytest.mark.parametrize("name", ["../secret.txt", "sub/../../secret.txt", "/etc/passwd", "link.wav", "dirlink/x.txt"])
def test_escapes_are_refused(roots: tuple[Settings, Path], name: str) -> None:
    settings, inside = roots
    (inside / "sub").mkdir()
    (inside / "link.wav").symlink_to(inside.parent / "secret.txt")
    (inside / "dirlink").symlink_to(inside.parent)
    with pytest.raises(StorageAccessError, match=r"outside the directories this farm reads inputs from"):
        check_local_input(inside / name if not name.startswith("/") else Path(name), roots_from(settings))


def test_a_root_prefix_is_not_a_root(roots: tuple[Settings, Path]) -> None:
    settings, inside = roots
    sibling = inside.with_name(inside.name + "-evil")  # /x/audio-evil must not pass for /x/audio
    sibling.mkdir()
    (sibling / "a.wav").write_bytes(b"RIFF")
    with pytest.raises(StorageAccessError):
        check_local_input(sibling / "a.wav", roots_from(settings))


def test_upload_dir_is_always_a_root_and_size_is_limited(roots: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, _ = roots
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "big.wav").write_bytes(b"\0" * (2 << 20))
    with pytest.raises(InvalidJobError, match=r"big\.wav is 2 MiB, over the 1 MiB input limit \(max_input_mb\)"):
        check_local_input(uploads / "big.wav", roots_from(replace(settings, upload_dir=str(uploads))))


def test_no_roots_means_any_readable_path(farm_settings: Settings) -> None:
    assert farm_settings.input_roots == []
    assert check_local_input(Path("/etc/hostname"), roots_from(farm_settings)) == Path("/etc/hostname").resolve()


def test_outputs_only_inside_the_output_roots(tmp_path: Path, farm_settings: Settings) -> None:
    results, default = tmp_path / "results", tmp_path / "default"
    results.mkdir()
    settings = roots_from(replace(farm_settings, output_roots=[str(results)], output_uri=f"file://{default}"))
    assert check_local_output(results / "new" / "a.txt", settings) == (results / "new" / "a.txt").resolve()
    assert check_local_output(default / "a.txt", settings) == (default / "a.txt").resolve()  # output_uri
    # A job id is part of the file name: one with ../ in it must not lead out either.
    for escape in [results / ".." / "a.txt", Path(output_location(str(results), "../../x", "txt"))]:
        with pytest.raises(StorageAccessError, match=r"outside the directories this farm writes results to"):
            check_local_output(escape, settings)
    assert check_local_output(Path("/tmp/x.txt"), roots_from(farm_settings)) == Path("/tmp/x.txt").resolve()  # no roots


# --- the API's token, and pinned dependencies -----------------------------------------------


def test_api_token_comparison_is_constant_time() -> None:
    import inspect

    from farm.api import auth

    assert "hmac.compare_digest" in inspect.getsource(auth.require_token)


def test_dependencies_are_pinned_and_used_by_make_install() -> None:
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert pins and all("==" in line for line in pins), [p for p in pins if "==" not in p]
    names = {line.split("==")[0].lower().replace("_", "-") for line in pins}
    assert {"celery", "kombu", "redis", "av", "ctranslate2", "faster-whisper", "fastapi"} <= names
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile and "pip-audit" in makefile
