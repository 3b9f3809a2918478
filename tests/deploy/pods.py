"""Rendered Deployments run as "pods": real processes that share only Redis and S3.

No cluster runs here, so a pod is a process with its own root directory: its own
private temporary directory (TMPDIR, a tmpfs in the pod's own mount namespace: ``unshare
-m``, so needs root), home and working directory, the ConfigMap's files written
where the pod mounts them, and volumes as directories (an emptyDir is private to the pod,
a PersistentVolumeClaim is a directory the test shares between pods, as a ReadWriteMany
volume would be). Mount paths in the rendered env and settings files are rewritten to
those directories; service names resolve to the test's Redis; secretKeyRef and
configMap references resolve against the objects given. Everything else is the rendered
container as Kubernetes would start it: its env, its args, `farm` as the entrypoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from farm.serve.shutdown import stop_process
from tests.deploy.chart import container, kinds, secret_data
from tests.deploy.conftest import ROOT

SAFE_ENV = ("PATH", "LANG", "LC_ALL", "XDG_CACHE_HOME")


@dataclass
class Cluster:
    """What the rendered objects refer to: Secrets, shared claims, and service addresses."""

    docs: list[dict[str, Any]]
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    claims: dict[str, Path] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)  # "name:port" -> "127.0.0.1:port"

    def secret(self, name: str, key: str) -> str:
        rendered = {n: secret_data(d) for n, d in kinds(self.docs, "Secret").items()}
        found = (self.secrets | rendered).get(name)
        assert found is not None and key in found, f"secret {name}/{key} does not exist"
        return found[key]

    def config_map(self, name: str) -> dict[str, str]:
        data: dict[str, str] = kinds(self.docs, "ConfigMap")[name]["data"]
        return data


@dataclass
class Pod:
    name: str
    root: Path
    env: dict[str, str]
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.root / "pod.log"

    def start(self) -> Pod:
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [*private_tmp(self.env["TMPDIR"]), *self.argv], env=self.env, cwd=self.root / "app",
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self

    def exec(self, command: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a probe's exec command in the pod: its mount namespace, env and working directory."""
        assert self.process is not None
        argv = [sys.executable, "-m", "farm.cli", *command[1:]] if command[0] == "farm" else command
        enter = ["nsenter", "--target", str(self.process.pid), "--mount", "--"]
        return subprocess.run(
            [*enter, *argv], env=self.env, cwd=self.root / "app", capture_output=True, text=True, timeout=timeout
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 60) -> None:
        if self.process is not None:
            stop_process(self.process, timeout)  # a pod leads its own group: all of it goes

    def wait_for_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process is not None and self.process.poll() is None, f"{self.name} exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} from {self.name}:\n{self.output()}"
            time.sleep(0.2)


def private_tmp(tmpdir: str) -> list[str]:
    """A prefix that runs a command in its own mount namespace with an empty tmpfs on ``tmpdir``:
    what a pod writes to its /tmp, no other pod can open, even by absolute path."""
    if os.geteuid() != 0:
        pytest.fail("pods need their own mount namespace (unshare -m, nsenter): run the deploy tests as root")
    script = 'mount --make-rprivate / && mount -t tmpfs -o mode=1777 tmpfs "$0" && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, tmpdir]


def make_pod(cluster: Cluster, deployment: dict[str, Any], root: Path, **overrides: str) -> Pod:
    """The deployment's container as a pod rooted at ``root``; ``overrides`` adapt it to this machine."""
    spec = deployment["spec"]["template"]["spec"]
    box = container(deployment)
    for folder in ("app", "home", "tmp"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    mounts = _mount(cluster, spec["volumes"], box.get("volumeMounts", []), root)
    env = _base_env(root, mounts) | _container_env(cluster, box.get("env", []), mounts) | overrides
    argv = [sys.executable, "-m", "farm.cli", *box.get("args", [])]
    return Pod(deployment["metadata"]["name"], root, env, argv)


def _base_env(root: Path, mounts: dict[str, Path]) -> dict[str, str]:
    """The image's ENV (Dockerfile runtime stage) and what a container always has."""
    kept = {key: os.environ[key] for key in SAFE_ENV if key in os.environ}
    models = str(mounts.get("/models", root / "models"))
    image = {
        "FARM_SETTINGS_FILE": str(ROOT / "settings.toml"),  # the image's /app/settings.toml
        "FARM_ENV": "production",
        "FARM_MODELS_DIR": models,
        "HF_HOME": f"{models}/huggingface",
        "PYTHONPATH": str(ROOT),
    }
    return kept | image | {"HOME": str(root / "home"), "TMPDIR": str(root / "tmp"), "PYTHONUNBUFFERED": "1"}


def _mount(
    cluster: Cluster, volumes: list[dict[str, Any]], mounts: list[dict[str, Any]], root: Path
) -> dict[str, Path]:
    by_name = {v["name"]: v for v in volumes}
    placed: dict[str, Path] = {}
    for mount in mounts:
        volume = by_name[mount["name"]]
        placed[mount["mountPath"]] = _volume_dir(cluster, volume, root)
    for path, folder in placed.items():
        volume = by_name[next(m["name"] for m in mounts if m["mountPath"] == path)]
        if "configMap" in volume:
            for name, text in cluster.config_map(volume["configMap"]["name"]).items():
                (folder / name).write_text(_rewrite(text, placed, cluster))
    return placed


def _volume_dir(cluster: Cluster, volume: dict[str, Any], root: Path) -> Path:
    if "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"]["claimName"]
        assert claim in cluster.claims, f"claim {claim} is not bound"
        return cluster.claims[claim]
    folder = root / "volumes" / volume["name"]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _container_env(cluster: Cluster, entries: list[dict[str, Any]], mounts: dict[str, Path]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries:
        if "value" in entry:
            env[entry["name"]] = _rewrite(str(entry["value"]), mounts, cluster)
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = _rewrite(cluster.secret(ref["name"], ref["key"]), mounts, cluster)
    return env


def _rewrite(text: str, mounts: dict[str, Path], cluster: Cluster) -> str:
    for path, folder in sorted(mounts.items(), key=lambda item: -len(item[0])):
        text = text.replace(f'"{path}', f'"{folder}').replace(f"{path}/", f"{folder}/")
        text = text.replace(f",{path}", f",{folder}")
        if text == path or text.startswith(f"{path},"):
            text = str(folder) + text[len(path) :]
    for address, real in cluster.services.items():
        text = text.replace(address, real)
    return text
