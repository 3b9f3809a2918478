"""Producers and Flower must never start torch or load a model."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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


def test_inference_and_job_io_do_not_load_the_settings() -> None:
    # Settings reach the pipeline, roots, storage and delivery as values from an entry point.
    modules = imported_after("import farm.inference.pipeline, farm.io.roots, farm.io.storage, farm.io.delivery")
    assert "farm.config" not in modules and "dynaconf" not in modules


def test_only_entry_points_read_the_settings() -> None:
    readers = {path.relative_to(ROOT).as_posix() for path in _python_files() if _calls_get_settings(path)}
    entry_points = {"farm/config.py", "farm/serve/runtime.py", "farm/api/app.py", "farm/client.py"}
    entry_points |= {"farm/serve/flower.py"}  # the Celery app Flower runs on
    assert {p for p in readers if not p.startswith("farm/commands/")} - entry_points == set()


def _python_files() -> list[Path]:
    return [*(ROOT / "farm").rglob("*.py"), *(ROOT / "tasks").rglob("*.py")]


def _calls_get_settings(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(node, ast.Name) and node.id == "get_settings" for node in ast.walk(tree))


def test_audio_stages_do_not_depend_on_the_engine_layer() -> None:
    # Decoding, VAD and packing share the sample rate and Audio type with the engines, not through them.
    modules = imported_after("import farm.inference.audio, farm.inference.vad, farm.inference.packing")
    assert "farm.inference.signal" in modules
    assert not {m for m in modules if m.startswith("farm.inference.engines")}
