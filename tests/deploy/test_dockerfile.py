"""The Dockerfile: stages, the CPU/CUDA switch, a non-root user, models as a volume; hadolint."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib
import yaml

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


def test_the_image_installs_the_tested_pins(dockerfile: Dockerfile) -> None:
    builder = dockerfile.stage("builder")
    installs = [run for run in builder.values("RUN") if "pip install" in run]
    assert installs and all("-c constraints.txt" in run for run in installs)
    assert any(v.startswith("pyproject.toml") and "constraints.txt" in v for v in builder.values("COPY"))
    kept = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!constraints.txt" in kept and kept.index("!constraints.txt") > kept.index("*")
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    assert builder.args()["TORCH_VERSION"] == pins["torch"]
    assert not any("flower==" in run for run in installs)  # Flower too comes from constraints.txt
    assert "flower" in builder.args()["EXTRAS"].split(",")


def test_one_tag_scheme_everywhere(dockerfile: Dockerfile) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((ROOT / "helm" / "whisperfarm" / "Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "helm" / "whisperfarm" / "values.yaml").read_text())["image"]
    assert chart["appVersion"] == version and (values["cpuVariant"], values["cudaVariant"]) == ("cpu", "cuda")
    documented = set(re.findall(r"-t whisperfarm:(\S+)", DOCKERFILE.read_text()))
    assert documented == {f"{version}-cpu", f"{version}-cuda"}
    compose = (ROOT / "docker-compose.yml").read_text()
    assert set(re.findall(r"image: \$\{FARM_IMAGE:-whisperfarm\}:(\S+)", compose)) == {
        f"${{FARM_VERSION:-{version}}}-cpu", f"${{FARM_VERSION:-{version}}}-cuda",
    }  # fmt: skip


def test_health_check_and_uploads_owned_by_the_farm_user(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.stage("runtime")
    [check] = runtime.values("HEALTHCHECK")
    assert check.endswith('CMD ["farm", "probe", "live"]')
    [setup] = [run for run in runtime.values("RUN") if "useradd" in run]
    assert re.search(r'chown "\$FARM_UID:\$FARM_UID" [^&]*/uploads', setup)  # a new named volume copies it


def test_every_hadolint_pragma_is_explained() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            rule = line.split("=", 1)[1]
            explanation = " ".join(lines[max(0, number - 3) : number])
            assert f"{rule} (" in explanation, f"line {number + 1}: say why {rule} is ignored"
