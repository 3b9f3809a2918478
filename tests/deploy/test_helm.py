"""helm/whisperfarm rendered by a real Helm 3, linted, schema-checked and asserted on.

Kubernetes objects are validated with ``kubernetes-validate --strict``; KEDA objects,
which it does not know, with the ``cloudcoil-models-keda`` models (extra keys forbidden).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication

from farm.config import load_settings
from farm.queue.sentinel import parse_sentinel_url
from tests.deploy.chart import CHART, container, find, helm, render, render_text

KUBERNETES_VERSION = "1.32.0"  # the kubectl/helm layer the tests use is v1.32
KEDA_MODELS = {"ScaledObject": ScaledObject, "TriggerAuthentication": TriggerAuthentication}

# A farm with everything turned on: two GPU groups and a CPU group, KEDA with running
# jobs from Prometheus, an external Redis with a password, a shared model volume.
FULL: dict[str, Any] = {
    "settings": {"model": "large-v3", "device_concurrency": {"gpu0": 3}, "beam_size": 5},
    "models": {"existingClaim": "whisper-models"},
    "redis": {
        "bundled": {"enabled": False},
        "external": {"existingSecret": "farm-redis", "address": "redis.data:6379", "passwordKey": "password"},
    },
    "workers": {
        "keda": {"enabled": True, "running": {"prometheusAddress": "http://prom:9090"}},
        "groups": {
            "a100": {
                "gpusPerPod": 4, "concurrencyPerGpu": 2, "batchSizePerGpu": 16, "model": "large-v3",
                "engine": "ctranslate2", "computeType": "float16",
                "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
                "resources": {"requests": {"cpu": "8", "memory": "32Gi"}, "limits": {"memory": "64Gi"}},
            },
            "t4": {"gpusPerPod": 1, "concurrencyPerGpu": 4, "batchSizePerGpu": 4, "model": "distil-large-v3"},
            "cpu": {"gpusPerPod": 0, "concurrencyPerGpu": 1, "batchSizePerGpu": 1, "model": "base"},
        },
    },
}  # fmt: skip

# An external Redis behind three Sentinels, KEDA scaling through them.
SENTINEL: dict[str, Any] = {
    "redis": {
        "bundled": {"enabled": False},
        "external": {
            "sentinel": {"addresses": ["s1.data:26379", "s2.data:26379", "s3.data:26379"], "masterName": "farm"},
            "databaseIndex": 2,
        },
    },
    "workers": {"keda": {"enabled": True}},
}


def checksum(deployment: dict[str, Any]) -> str:
    value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    return value


@pytest.mark.parametrize("values", [None, FULL], ids=["defaults", "full"])
def test_helm_lint(helm_bin: Path, tmp_path: Path, values: dict[str, Any] | None) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values or {}))
    done = helm(helm_bin, "lint", "--strict", str(CHART), "-f", str(values_file))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "values",
    [
        None,
        FULL,
        {"redis": {"bundled": {"persistence": {"enabled": True}}}, "workers": {"keda": {"enabled": True}}},
        SENTINEL,
    ],
    ids=["defaults", "full", "bundled-redis-keda", "external-sentinel-keda"],
)
def test_every_manifest_is_valid(helm_bin: Path, tmp_path: Path, values: dict[str, Any] | None) -> None:
    docs = render(helm_bin, tmp_path, values)
    kubernetes = [d for d in docs if d["kind"] not in KEDA_MODELS]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(kubernetes))
    validator = Path(sys.executable).with_name("kubernetes-validate")
    done = subprocess.run(
        [str(validator), "--strict", "-k", KUBERNETES_VERSION, str(manifest)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == len(kubernetes)
    for doc in docs:
        if doc["kind"] in KEDA_MODELS:
            KEDA_MODELS[doc["kind"]].model_validate(doc, extra="forbid")


def test_the_validators_are_real(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {portz: []}\n")
    validator = Path(sys.executable).with_name("kubernetes-validate")
    done = subprocess.run([str(validator), "--strict", "-k", KUBERNETES_VERSION, str(bad)], capture_output=True)
    assert done.returncode != 0
    with pytest.raises(ValueError, match="listNam"):
        ScaledObject.model_validate(
            {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
             "spec": {"scaleTargetRef": {"name": "x"}, "triggers": [{"type": "redis", "listNam": "farm"}]}},
            extra="forbid",
        )  # fmt: skip


def test_one_deployment_per_group_with_its_gpus_and_queues(helm_bin: Path, tmp_path: Path) -> None:
    docs = render(helm_bin, tmp_path, FULL)
    a100 = find(docs, "Deployment", "farm-whisperfarm-worker-a100")
    pod = a100["spec"]["template"]["spec"]
    worker = container(a100)
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert worker["image"].endswith("-cuda") and worker["args"] == ["worker"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    queues = json.loads(a100["metadata"]["annotations"]["whisperfarm.io/queues"])
    assert queues == ["farm.gpu0", "farm.gpu1", "farm.gpu2", "farm.gpu3", "farm"]
    assert worker["livenessProbe"]["exec"]["command"] == worker["startupProbe"]["exec"]["command"]
    assert worker["livenessProbe"]["exec"]["command"] == ["farm", "probe", "live"]  # no Redis in it
    assert worker["readinessProbe"]["exec"]["command"] == ["farm", "probe", "ready"]
    env = {e["name"]: e for e in worker["env"]}
    assert (
        env["FARM_SETTINGS_FILES"]["value"] == "/etc/whisperfarm/settings.local.toml,/etc/whisperfarm/worker-a100.toml"
    )
    assert env["FARM_BROKER_URL"]["valueFrom"]["secretKeyRef"] == {"name": "farm-redis", "key": "url"}
    assert pod["volumes"][1]["persistentVolumeClaim"]["claimName"] == "whisper-models"
    assert pod["securityContext"]["runAsNonRoot"] is True

    cpu = find(docs, "Deployment", "farm-whisperfarm-worker-cpu")
    assert "nvidia.com/gpu" not in container(cpu)["resources"].get("limits", {})
    assert "tolerations" not in cpu["spec"]["template"]["spec"]  # the GPU toleration is for GPU groups
    assert container(cpu)["image"].endswith("-cpu")
    assert json.loads(cpu["metadata"]["annotations"]["whisperfarm.io/queues"]) == ["farm.cpu", "farm"]
    assert not any(d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-redis") for d in docs)


def test_group_settings_render_to_a_file_farm_accepts(
    helm_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(helm_bin, tmp_path, FULL)
    data = find(docs, "ConfigMap", "farm-whisperfarm-settings")["data"]
    group = tomllib.loads(data["worker-a100.toml"])["default"]
    assert group == {
        "devices": "0,1,2,3", "concurrency": 2, "batch_size": 16, "model": "large-v3",
        "engine": "ctranslate2", "compute_type": "float16",
    }  # fmt: skip
    files = []
    for name in ("settings.local.toml", "worker-a100.toml"):
        (tmp_path / name).write_text(data[name])
        files.append(str(tmp_path / name))
    monkeypatch.setenv("FARM_SETTINGS_FILES", ",".join(files))
    monkeypatch.setenv("FARM_ENV", "production")
    settings = load_settings()
    assert (settings.devices, settings.concurrency, settings.batch_size) == ("0,1,2,3", 2, 16)
    assert settings.device_concurrency == {"gpu0": 3}  # an inline table from the chart's settings


def test_checksum_changes_with_the_settings_a_pod_mounts(helm_bin: Path, tmp_path: Path) -> None:
    def checksums(values: dict[str, Any]) -> dict[str, str]:
        docs = render(helm_bin, tmp_path, values)
        return {
            d["metadata"]["name"]: checksum(d)
            for d in docs
            if d["kind"] == "Deployment" and "redis" not in d["metadata"]["name"]
        }

    two_groups: dict[str, Any] = {"workers": {"groups": {"big": {"gpusPerPod": 2}, "small": {"gpusPerPod": 1}}}}
    base = checksums(two_groups)
    assert checksums(two_groups) == base  # deterministic
    worker_big, worker_small = "farm-whisperfarm-worker-big", "farm-whisperfarm-worker-small"

    batch = checksums(
        {"workers": {"groups": {"big": {"gpusPerPod": 2, "batchSizePerGpu": 4}, "small": {"gpusPerPod": 1}}}}
    )
    assert batch[worker_big] != base[worker_big]  # that group's file changed
    assert batch[worker_small] == base[worker_small] and batch["farm-whisperfarm-api"] == base["farm-whisperfarm-api"]

    model = checksums(two_groups | {"settings": {"model": "large-v3-turbo"}})
    assert all(model[name] != base[name] for name in base)  # everyone mounts settings.local.toml

    replicas = checksums(two_groups | {"api": {"replicas": 3}})
    assert replicas == base  # not a settings change: no restart


def test_grace_period_covers_the_hard_time_limit(helm_bin: Path, tmp_path: Path) -> None:
    docs = render(helm_bin, tmp_path)
    worker = find(docs, "Deployment", "farm-whisperfarm-worker-gpu")
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 1900 + 60

    longer = {"settings": {"soft_time_limit": 3500, "time_limit": 3600, "visibility_timeout": 7200}}
    docs = render(helm_bin, tmp_path, longer)
    worker = find(docs, "Deployment", "farm-whisperfarm-worker-gpu")
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 3660

    too_short = render_text(helm_bin, tmp_path, {"workers": {"terminationGracePeriodSeconds": 600}})
    assert too_short.returncode != 0
    assert "terminationGracePeriodSeconds (600) must be at least time_limit (1900)" in too_short.stderr


def test_keda_scales_each_group_on_queued_and_running_jobs(helm_bin: Path, tmp_path: Path) -> None:
    docs = render(helm_bin, tmp_path, FULL)
    scaled = find(docs, "ScaledObject", "farm-whisperfarm-worker-a100")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "farm-whisperfarm-worker-a100"
    redis_triggers = [t for t in spec["triggers"] if t["type"] == "redis"]
    assert [t["metadata"]["listName"] for t in redis_triggers] == [
        "farm.gpu0", "farm.gpu1", "farm.gpu2", "farm.gpu3", "farm",
    ]  # fmt: skip
    assert {t["metadata"]["address"] for t in redis_triggers} == {"redis.data:6379"}
    assert {t["authenticationRef"]["name"] for t in redis_triggers} == {"farm-whisperfarm-worker-a100-redis"}
    [running] = [t for t in spec["triggers"] if t["type"] == "prometheus"]
    assert "farm-whisperfarm-worker-a100-" in running["metadata"]["query"]
    modifiers = spec["advanced"]["scalingModifiers"]
    names = [t["name"] for t in spec["triggers"]]
    assert [term.split(" * ")[0] for term in modifiers["formula"].split(" + ")] == names and "running" in names
    assert modifiers["target"] == "8"  # 4 GPUs x concurrency 2 jobs per pod
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["policies"][0]["value"] == 1
    deployment = find(docs, "Deployment", "farm-whisperfarm-worker-a100")
    assert "replicas" not in deployment["spec"]  # KEDA owns the replica count
    auth = find(docs, "TriggerAuthentication", "farm-whisperfarm-worker-a100-redis")
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": "farm-redis", "key": "password"}]


def test_bundled_redis_and_keda_address(helm_bin: Path, tmp_path: Path) -> None:
    docs = render(helm_bin, tmp_path, {"workers": {"keda": {"enabled": True}}})
    redis = container(find(docs, "Deployment", "farm-whisperfarm-redis"))
    assert redis["args"][redis["args"].index("--maxmemory-policy") + 1] == "noeviction"
    scaled = find(docs, "ScaledObject", "farm-whisperfarm-worker-gpu")
    assert {t["metadata"]["address"] for t in scaled["spec"]["triggers"]} == {"farm-whisperfarm-redis.speech.svc:6379"}
    assert scaled["spec"]["advanced"]["scalingModifiers"]["formula"] == "queued_farm_gpu0 + queued_farm"
    worker_env = {
        e["name"]: e.get("value") for e in container(find(docs, "Deployment", "farm-whisperfarm-worker-gpu"))["env"]
    }
    assert worker_env["FARM_BROKER_URL"] == "redis://farm-whisperfarm-redis:6379/0"
    assert not any(d["kind"] == "TriggerAuthentication" for d in docs)


def test_api_flower_and_pdbs(helm_bin: Path, tmp_path: Path) -> None:
    docs = render(helm_bin, tmp_path)
    assert container(find(docs, "Deployment", "farm-whisperfarm-api"))["args"] == ["api"]
    flower = container(find(docs, "Deployment", "farm-whisperfarm-flower"))
    assert flower["command"] == ["celery", "-A", "farm.serve.flower", "flower", "--port=5555"]
    worker = container(find(docs, "Deployment", "farm-whisperfarm-worker-gpu"))
    assert {"name": "FARM_TASK_EVENTS", "value": "true"} in worker["env"]  # Flower is on by default
    pdb = find(docs, "PodDisruptionBudget", "farm-whisperfarm-worker-gpu")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["whisperfarm.io/worker-group"] == "gpu"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"workers": {"groups": {"gpu": {"gpusPerPod": -1}}}}, "gpusPerPod"),
        ({"workers": {"concurrencyPerGpu": -1}}, "concurrencyPerGpu"),
        ({"workers": {"concurrencyPerGpu": 0, "keda": {"enabled": True}}}, "keda.jobsPerPod is required"),
        ({"workers": {"enigne": "x"}}, "enigne"),
        ({"settings": {"engine": "whisper.cpp"}}, "engine"),
        ({"redis": {"bundled": {"enabled": False}}}, "redis.external.existingSecret (or redis.external.sentinel"),
        (
            {"redis": {"bundled": {"enabled": False}, "external": {"sentinel": {"addresses": ["s:26379"]}}}},
            "sentinel.masterName is required",
        ),
    ],
)
def test_bad_values_fail_at_render(helm_bin: Path, tmp_path: Path, values: dict[str, Any], message: str) -> None:
    done = render_text(helm_bin, tmp_path, values)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_external_sentinel_reaches_pods_and_keda(helm_bin: Path, tmp_path: Path) -> None:
    docs = render(helm_bin, tmp_path, SENTINEL)
    for name in ("farm-whisperfarm-api", "farm-whisperfarm-worker-gpu", "farm-whisperfarm-flower"):
        url = {e["name"]: e for e in container(find(docs, "Deployment", name))["env"]}["FARM_BROKER_URL"]["value"]
        target = parse_sentinel_url(url)
        assert (target.master, target.db) == ("farm", 2)
        assert target.hosts == (("s1.data", 26379), ("s2.data", 26379), ("s3.data", 26379))
    triggers = find(docs, "ScaledObject", "farm-whisperfarm-worker-gpu")["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"redis-sentinel"}
    assert {t["metadata"]["sentinelMaster"] for t in triggers} == {"farm"}
    assert {t["metadata"]["addresses"] for t in triggers} == {"s1.data:26379,s2.data:26379,s3.data:26379"}
