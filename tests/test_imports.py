"""Producers and Flower must never start torch or load a model."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


def test_importing_tasks_does_not_import_torch_or_an_engine() -> None:
    modules = imported_after("import tasks")
    assert "torch" not in modules
    assert "faster_whisper" not in modules and "ctranslate2" not in modules
    assert "celery" in modules


def test_client_needs_no_numeric_stack() -> None:
    modules = imported_after("import farm.client, farm.cli")
    assert not {"torch", "numpy", "av", "faster_whisper"} & modules


def test_library_modules_do_not_import_celery() -> None:
    modules = imported_after("import farm.inference.engines, farm.inference.pipeline, farm.io.storage")
    assert "celery" not in modules


def test_the_command_line_loads_only_the_subcommand_it_runs() -> None:
    # `farm capacity` must answer in well under a second: no Celery, Redis client or Dynaconf.
    modules = imported_after("from farm.cli import main; main.get_command(None, 'capacity')")
    assert not {"celery", "redis", "dynaconf"} & modules
    assert "farm.commands.capacity" in modules and "farm.commands.jobs" not in modules
