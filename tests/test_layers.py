"""The import contracts of `make lint` (pyproject's [tool.importlinter]) hold, and can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS)], cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def copy_of_the_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for name in ("farm", "tasks"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_layers_hold() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("farm/inference/engines/base.py", "import celery", "inference knows nothing of Celery"),
        ("farm/inference/pipeline.py", "from farm.config import get_settings", "inference knows nothing of"),
        ("farm/client.py", "from farm.inference import audio", "never load the inference stack"),
        ("farm/job/spec.py", "import redis", "stdlib-only vocabulary"),
    ],
)
def test_a_deliberate_violation_breaks_the_lint(tmp_path: Path, module: str, line: str, contract: str) -> None:
    tree = copy_of_the_tree(tmp_path)
    with open(tree / module, "a") as source:
        source.write(f"\n{line}  # noqa\n")
    run = lint_imports(tree)
    assert run.returncode != 0
    assert f"{contract}" in run.stdout and "BROKEN" in run.stdout, run.stdout
