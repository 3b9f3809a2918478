"""The Dockerfile: stages, the CPU/CUDA switch, a non-root user, models as a volume; hadolint."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def args(self) -> dict[str, str]:
        pairs = (value.split("=", 1) for value in self.values("ARG") if "=" in value)
        return {name: default for name, default in pairs}


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    logical = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", text)
    lines = (line.strip() for line in logical.splitlines())
    return [(kw.upper(), rest.strip()) for kw, _, rest in (ln.partition(" ") for ln in lines if ln and ln[0] != "#")]


def parse(text: str) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            assert len(words) == 3 and words[1].lower() == "as", f"every stage is named: FROM {args}"
            stages.append(Stage(words[2], words[0]))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return Dockerfile(global_args, stages)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse(DOCKERFILE.read_text())


def test_multi_stage_build_ends_in_a_runtime_stage(dockerfile: Dockerfile) -> None:
    assert [s.name for s in dockerfile.stages] == ["base-cpu", "base-cuda", "base", "builder", "runtime"]
    runtime = dockerfile.stage("runtime")
    assert runtime.base == "base"
    assert any(v.startswith("--from=builder /opt/venv") for v in runtime.values("COPY"))
    # Nothing is compiled or pip-installed in the image that runs.
    assert not any("pip install" in v for v in runtime.values("RUN"))


def test_variant_build_argument_selects_cpu_or_cuda(dockerfile: Dockerfile) -> None:
    assert dockerfile.global_args["VARIANT"] == "cpu"
    assert dockerfile.stage("base").base == "base-${VARIANT}"
    assert dockerfile.stage("base-cuda").base == "${CUDA_BASE}"
    assert dockerfile.global_args["CUDA_BASE"].startswith("nvidia/cuda:")
    assert "cudnn" in dockerfile.global_args["CUDA_BASE"]
    cpu_env = " ".join(dockerfile.stage("base-cpu").values("ENV"))
    cuda_env = " ".join(dockerfile.stage("base-cuda").values("ENV"))
    assert "whl/cpu" in cpu_env and "whl/cu" in cuda_env
    builder_runs = " ".join(dockerfile.stage("builder").values("RUN"))
    assert '--index-url "$TORCH_INDEX_URL"' in builder_runs


def test_runs_as_a_numeric_non_root_user(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.stage("runtime")
    [user] = runtime.values("USER")
    resolved = re.sub(r"\$\{(\w+)\}", lambda m: runtime.args()[m.group(1)], user)
    uid, _, gid = resolved.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    assert any('--uid "$FARM_UID"' in v for v in runtime.values("RUN"))


def test_models_are_a_volume_and_settings_are_layered(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.stage("runtime")
    assert runtime.values("VOLUME") == ['["/models"]']
    env = " ".join(runtime.values("ENV"))
    assert "FARM_MODELS_DIR=/models" in env
    assert "FARM_SETTINGS_FILES=/etc/whisperfarm/settings.local.toml" in env
    # The image holds the defaults only; local settings and secrets come at run time.
    assert runtime.values("COPY")[-1] == "settings.toml ./"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and "**/.secrets.toml" in ignored and "**/settings.local.toml" in ignored
    assert runtime.values("ENTRYPOINT") == ['["farm"]'] and runtime.values("CMD") == ['["worker"]']


def test_hadolint_passes(hadolint_bin: Path) -> None:
    done = subprocess.run(
        [str(hadolint_bin), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_is_real(hadolint_bin: Path, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    done = subprocess.run([str(hadolint_bin), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DL3007" in done.stdout
