"""What a default install gets: a token from a Secret, removable groups, honest KEDA sums,
probes that mean something, values that refuse typos and limits that contradict."""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from pathlib import Path
from typing import Any

import pytest
import tomllib

from farm.config import SECRET_KEYS
from tests.deploy.chart import CHART, PREFIX, container, find, kinds, render, render_text, secret_data
from tests.deploy.conftest import ROOT

THREE_GROUPS: dict[str, Any] = {
    "workers": {
        "keda": {"enabled": True},
        "groups": {
            "gpu": {"enabled": False},
            "a100": {"gpusPerPod": 4, "concurrencyPerGpu": 2},
            "t4": {"gpusPerPod": 1, "concurrencyPerGpu": 4},
            "cpu": {"gpusPerPod": 0, "concurrencyPerGpu": 1},
        },
    }
}


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(deployment)["env"]}


def test_api_token_comes_from_a_secret_never_the_config_map(helm_bin: Path, tmp_path: Path) -> None:
    docs = render(helm_bin, tmp_path)
    token_ref = env_of(find(docs, "Deployment", f"{PREFIX}-api"))["FARM_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token_ref == {"name": f"{PREFIX}-api-token", "key": "token"}
    secret = find(docs, "Secret", f"{PREFIX}-api-token")
    assert len(secret_data(secret)["token"]) == 48
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"  # survives uninstall
    assert "lookup" in (CHART / "templates" / "api" / "secret.yaml").read_text()  # kept across upgrades
    assert (
        secret_data(secret)["token"]
        != secret_data(find(render(helm_bin, tmp_path), "Secret", secret["metadata"]["name"]))["token"]
    )

    own = render(helm_bin, tmp_path, {"api": {"auth": {"existingSecret": "mine", "secretKey": "bearer"}}})
    assert env_of(find(own, "Deployment", f"{PREFIX}-api"))["FARM_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "mine", "key": "bearer",
    }  # fmt: skip
    assert not kinds(own, "Secret")
    refused = render_text(helm_bin, tmp_path, {"settings": {"api_token": "in-a-config-map"}})
    assert refused.returncode != 0 and "api_token" in refused.stderr


def test_the_api_is_ready_by_readyz_and_alive_by_healthz(helm_bin: Path, tmp_path: Path) -> None:
    api = container(find(render(helm_bin, tmp_path), "Deployment", f"{PREFIX}-api"))
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_a_group_can_be_removed(helm_bin: Path, tmp_path: Path) -> None:
    values = {"workers": {"groups": {"gpu": {"enabled": False}, "cpu": {"gpusPerPod": 0}}}}
    docs = render(helm_bin, tmp_path, values)
    assert set(kinds(docs, "Deployment")) == {f"{PREFIX}-{c}" for c in ("api", "flower", "redis", "worker-cpu")}
    assert "nvidia.com/gpu" not in json.dumps(docs)  # nothing asks for a GPU, nothing tolerates one
    assert "worker-gpu.toml" not in find(docs, "ConfigMap", f"{PREFIX}-settings")["data"]


def test_shared_upload_volume_is_mounted_by_the_api_and_every_worker(helm_bin: Path, tmp_path: Path) -> None:
    docs = render(helm_bin, tmp_path, {"uploads": {"sharedVolume": {"enabled": True, "storageClass": "nfs"}}})
    claim = find(docs, "PersistentVolumeClaim", f"{PREFIX}-uploads")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and claim["spec"]["storageClassName"] == "nfs"
    settings = tomllib.loads(find(docs, "ConfigMap", f"{PREFIX}-settings")["data"]["settings.local.toml"])
    assert settings["default"]["upload_dir"] == "/uploads"
    for name in (f"{PREFIX}-api", f"{PREFIX}-worker-gpu"):
        mounts = {m["name"]: m["mountPath"] for m in container(find(docs, "Deployment", name))["volumeMounts"]}
        assert mounts["uploads"] == "/uploads"


# --- KEDA: a shared backlog is counted once -------------------------------------------------

BINARY = {ast.Add: operator.add, ast.Mult: operator.mul}


def evaluate(formula: str, metrics: dict[str, float]) -> float:
    """A scaling-modifiers formula of sums and products, as KEDA's expr evaluates it."""

    def value(node: ast.expr) -> float:
        if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
            return float(BINARY[type(node.op)](value(node.left), value(node.right)))
        if isinstance(node, ast.Name):
            return metrics[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        raise AssertionError(f"unexpected {ast.dump(node)} in {formula}")

    return value(ast.parse(formula, mode="eval").body)


def desired_replicas(scaled: dict[str, Any], lists: dict[str, int]) -> int:
    """What the HPA asks for: ceil(formula / target) within min..max (AverageValue)."""
    spec = scaled["spec"]
    metrics = {t["name"]: float(lists.get(t["metadata"].get("listName", ""), 0)) for t in spec["triggers"]}
    modifiers = spec["advanced"]["scalingModifiers"]
    wanted = math.ceil(round(evaluate(modifiers["formula"], metrics) / float(modifiers["target"]), 6))
    return int(min(spec["maxReplicaCount"], max(spec["minReplicaCount"], wanted)))


@pytest.mark.parametrize("queued", [{"farm": 24}, {"farm": 12, "farm.gpu0": 12}])
def test_three_groups_ask_for_no_more_than_the_backlog_needs(
    helm_bin: Path, tmp_path: Path, queued: dict[str, int]
) -> None:
    values = json.loads(json.dumps(THREE_GROUPS))
    values["workers"]["keda"]["minReplicaCount"] = 0
    docs = render(helm_bin, tmp_path, values)
    scaled = kinds(docs, "ScaledObject")
    assert set(scaled) == {f"{PREFIX}-worker-{g}" for g in ("a100", "t4", "cpu")}
    slots = {f"{PREFIX}-worker-a100": 8, f"{PREFIX}-worker-t4": 4, f"{PREFIX}-worker-cpu": 1}
    replicas = {name: desired_replicas(obj, queued) for name, obj in scaled.items()}
    capacity = sum(replicas[name] * slots[name] for name in scaled)
    backlog = sum(queued.values())
    # Enough room for every queued job, and at most one partly filled pod per group beyond it
    # (main asked for 3 + 6 + 10 pods: 58 slots for 24 jobs).
    assert backlog <= capacity < backlog + sum(slots.values()), replicas
    if queued == {"farm": 24}:  # shares 14.8, 7.4 and 1.8 jobs: docs/capacity.md works it through
        assert replicas == {f"{PREFIX}-worker-a100": 2, f"{PREFIX}-worker-t4": 2, f"{PREFIX}-worker-cpu": 2}


def test_running_jobs_query_matches_only_the_groups_own_pods(helm_bin: Path, tmp_path: Path) -> None:
    values = {"workers": {"keda": {"enabled": True, "running": {"prometheusAddress": "http://prom:9090"}},
                          "groups": {"a": {"gpusPerPod": 1}, "a-x": {"gpusPerPod": 1}}}}  # fmt: skip
    scaled = find(render(helm_bin, tmp_path, values), "ScaledObject", f"{PREFIX}-worker-a")
    [running] = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    pattern = re.search(r'worker=~"([^"]+)"', running["metadata"]["query"])
    assert pattern is not None
    matches = re.compile(pattern.group(1)).fullmatch  # PromQL regexes are anchored at both ends
    assert matches(f"gpu0@{PREFIX}-worker-a-5d8f7c9b4-x2k7q")
    assert not matches(f"gpu0@{PREFIX}-worker-a-x-5d8f7c9b4-x2k7q")


# --- values that refuse typos and contradictions --------------------------------------------


def test_the_schema_knows_every_setting_and_no_secret(helm_bin: Path, tmp_path: Path) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())["definitions"]["settings"]
    defaults = tomllib.loads((ROOT / "farm" / "defaults.toml").read_text())["default"]
    known = (CHART / "files" / "setting-keys.txt").read_text().split()
    assert set(schema["properties"]) == set(known) == set(defaults) - set(SECRET_KEYS)
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    quoted = " ".join(f'"{key}"' for key in sorted(SECRET_KEYS))
    assert f"$secrets := list {quoted}" in helpers


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"settings": {"concurrancy": 8}}, "unknown setting 'concurrancy' (did you mean 'concurrency'?)"),
        ({"workers": {"settings": {"batch_sise": 8}}}, "unknown setting 'batch_sise' (did you mean 'batch_size'?)"),
        ({"workers": {"groups": {"gpu": {"settings": {"beam_sise": 1}}}}},
         "workers.groups.gpu.settings: unknown setting 'beam_sise' (did you mean 'beam_size'?)"),
        ({"settings": {"api_token": "x"}}, "settings.api_token is a secret"),
        ({"settings": {"device_concurrency": {"gpu0": "x"}}}, "gpu0"),
        ({"settings": {"soft_time_limit": 1900}}, "soft_time_limit (1900) must be below time_limit (1900)"),
        ({"workers": {"groups": {"gpu": {"settings": {"time_limit": 4000}}}}},
         "workers.groups.gpu: time_limit (4000) must be below visibility_timeout (3600)"),
        ({"settings": {"visibility_timeout": 1000}}, "time_limit (1900) must be below visibility_timeout (1000)"),
    ],
)  # fmt: skip
def test_typos_and_contradictions_fail_at_render(
    helm_bin: Path, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    done = render_text(helm_bin, tmp_path, values)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_bundled_redis_keeps_the_queue_on_a_volume_by_default(helm_bin: Path, tmp_path: Path) -> None:
    docs = render(helm_bin, tmp_path)
    redis = find(docs, "Deployment", f"{PREFIX}-redis")
    args = container(redis)["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    [data] = [v for v in redis["spec"]["template"]["spec"]["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] == f"{PREFIX}-redis"
    assert find(docs, "PersistentVolumeClaim", f"{PREFIX}-redis")["spec"]["accessModes"] == ["ReadWriteOnce"]
