"""docker-compose.yml, validated and normalised by the real Docker Compose v2 binary."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomllib

from tests.deploy.conftest import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
SETTINGS_TARGET = "/etc/whisperfarm/settings.local.toml"
GPU_WORKERS = {"worker-gpu0": "0", "worker-gpu1": "1"}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def compose(
    binary: Path, settings: Path, *args: str, token: str | None = "test-token"
) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"FARM_SETTINGS_LOCAL": str(settings)}
    env.pop("FARM_IMAGE", None)
    env.pop("FARM_API_TOKEN", None)
    if token is not None:
        env["FARM_API_TOKEN"] = token
    return subprocess.run(
        [str(binary), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


@pytest.fixture()
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "settings.local.toml"
    path.write_text("[default]\nconcurrency = 2\n")
    return path


def config(binary: Path, settings: Path, *profiles: str) -> dict[str, Any]:
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    done = compose(binary, settings, *flags, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_compose_file_is_valid(compose_bin: Path, settings_file: Path) -> None:
    done = compose(compose_bin, settings_file, "--profile", "gpu", "--profile", "cpu", "config", "--quiet")
    assert done.returncode == 0, done.stderr


def test_the_validator_is_real(compose_bin: Path, tmp_path: Path) -> None:
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  a:\n    image: x\n    deploy:\n      resources:\n        reservations:\n"
                      "          devices:\n            - drivr: nvidia\n")  # fmt: skip
    done = subprocess.run([str(compose_bin), "-f", str(broken), "config", "--quiet"], capture_output=True, text=True)
    assert done.returncode != 0 and "drivr" in done.stderr


def test_profiles_pick_the_workers(compose_bin: Path, settings_file: Path) -> None:
    assert set(config(compose_bin, settings_file)["services"]) == {"redis", "api", "flower"}
    assert set(config(compose_bin, settings_file, "gpu")["services"]) == {"redis", "api", "flower", *GPU_WORKERS}
    assert set(config(compose_bin, settings_file, "cpu")["services"]) == {"redis", "api", "flower", "worker-cpu"}


def test_one_gpu_worker_per_gpu_with_a_device_reservation(compose_bin: Path, settings_file: Path) -> None:
    services = config(compose_bin, settings_file, "gpu")["services"]
    for name, index in GPU_WORKERS.items():
        service = services[name]
        [device] = service["deploy"]["resources"]["reservations"]["devices"]
        assert device == {"driver": "nvidia", "device_ids": [index], "capabilities": ["gpu"]}
        assert service["command"] == ["worker"]
        assert service["build"]["args"]["VARIANT"] == "cuda"
        assert service["hostname"] == name  # node names gpu0@worker-gpu0, gpu0@worker-gpu1 stay apart
        assert service["healthcheck"]["test"] == ["CMD", "farm", "probe", "live"]  # no Redis in it
        assert service["image"] == f"whisperfarm:{VERSION}-cuda"
        assert _seconds(service["stop_grace_period"]) >= 1900  # the default hard time limit


def test_settings_are_mounted_not_baked(compose_bin: Path, settings_file: Path) -> None:
    services = config(compose_bin, settings_file, "gpu", "cpu")["services"]
    for name in ("api", "flower", "worker-cpu", *GPU_WORKERS):
        mounts = {m["target"]: m for m in services[name]["volumes"]}
        settings = mounts[SETTINGS_TARGET]
        assert (settings["type"], settings["source"], settings["read_only"]) == ("bind", str(settings_file), True)
        assert mounts["/models"]["type"] == "volume"
        assert services[name]["environment"]["FARM_BROKER_URL"] == "redis://redis:6379/0"
    assert services["worker-cpu"]["environment"]["FARM_DEVICES"] == "cpu"
    assert "deploy" not in services["worker-cpu"]


def test_redis_never_evicts_queues(compose_bin: Path, settings_file: Path) -> None:
    services = config(compose_bin, settings_file)["services"]
    command = services["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["flower"]["entrypoint"] == ["celery", "-A", "farm.serve.flower", "flower", "--port=5555"]
    assert services["flower"]["ports"][0]["host_ip"] == "127.0.0.1"
    assert all(services[name]["environment"]["FARM_TASK_EVENTS"] == "true" for name in ("flower", "api"))


def _seconds(duration: str) -> float:
    """Compose writes durations the Go way: "32m0s", "1h2m3s"."""
    total, number = 0.0, ""
    for char in duration:
        if char.isdigit() or char == ".":
            number += char
            continue
        total += float(number) * {"h": 3600, "m": 60, "s": 1}[char]
        number = ""
    return total


def test_the_api_needs_a_token_and_shares_uploads_with_workers(compose_bin: Path, settings_file: Path) -> None:
    refused = compose(compose_bin, settings_file, "config", token=None)
    assert refused.returncode != 0 and "FARM_API_TOKEN" in refused.stderr
    services = config(compose_bin, settings_file, "cpu")["services"]
    assert services["api"]["environment"]["FARM_API_TOKEN"] == "test-token"
    for name in ("api", "worker-cpu"):
        assert services[name]["environment"]["FARM_UPLOAD_DIR"] == "/uploads"
        assert any(v["target"] == "/uploads" and v["source"] == "uploads" for v in services[name]["volumes"])


def test_every_service_has_a_health_check_and_the_image_tag_scheme(compose_bin: Path, settings_file: Path) -> None:
    services = config(compose_bin, settings_file, "gpu", "cpu")["services"]
    assert services["worker-cpu"]["healthcheck"]["test"] == ["CMD", "farm", "probe", "live"]
    assert "5555/healthcheck" in " ".join(services["flower"]["healthcheck"]["test"])
    for name in ("api", "flower", "worker-cpu"):
        assert services[name]["image"] == f"whisperfarm:{VERSION}-cpu"
