"""Render helm/whisperfarm with the real Helm 3 and pick objects out of the result."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import ROOT

CHART = ROOT / "helm" / "whisperfarm"
RELEASE = "farm"
PREFIX = f"{RELEASE}-whisperfarm"


def helm(helm_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_bin), *args], capture_output=True, text=True, timeout=60)


def render_text(
    helm_bin: Path, tmp_path: Path, values: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    values_file = tmp_path / f"values-{len(list(tmp_path.glob('values-*')))}.yaml"
    values_file.write_text(yaml.safe_dump(values or {}))
    return helm(helm_bin, "template", RELEASE, str(CHART), "--namespace", "speech", "-f", str(values_file))


def render(helm_bin: Path, tmp_path: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    done = render_text(helm_bin, tmp_path, values)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name} not rendered once: {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return matches[0]


def kinds(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [first] = deployment["spec"]["template"]["spec"]["containers"]
    return first


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
