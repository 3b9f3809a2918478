"""Hide what the air-gapped GPU host lacks, for processes started with this folder first
on PYTHONPATH (tests/test_gpu_check.py): PyAV, faster-whisper, CTranslate2, boto3 and the
API's packages. What bench/prepare_gpu_wheels.sh brings, and torch and transformers, stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType

MISSING = {"av", "faster_whisper", "ctranslate2", "boto3", "botocore", "prometheus_client", "fastapi", "uvicorn"}
_find_spec = PathFinder.find_spec.__func__  # type: ignore[attr-defined]


def _hidden(
    cls: type[PathFinder], name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
) -> ModuleSpec | None:
    # "not found" rather than an error: libraries probe with find_spec for optional packages
    if name.split(".")[0] in MISSING:
        return None
    spec: ModuleSpec | None = _find_spec(cls, name, path, target)
    return spec


PathFinder.find_spec = classmethod(_hidden)  # type: ignore[method-assign, assignment]
