"""Accuracy over ../shared/eval: WER per source and language, and long-form against faster-whisper.

Every clip with a human reference (and not marked ``use_for_wer: false``) goes through a
real farm (private Redis + `farm worker`): English with tiny.en, other languages with
multilingual base and the clip's language. Both long-form files are also transcribed by
faster-whisper's own sequential long-form ``WhisperModel.transcribe`` with the same model
and options, for the comparison the accuracy target is stated in. Japanese, Chinese and
Korean are scored by characters (CER). A benchmark, not a test.

    .venv/bin/python bench/accuracy.py
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import jiwer
from corpus import EVAL
from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

from farm.config import load_settings
from farm.inference.weights.models import resolve_model
from farm.planning.benchmark import Combo, private_farm

CHARACTER_SCORED = {"ja", "zh", "ko"}
ENGLISH = EnglishTextNormalizer({})
BASIC = BasicTextNormalizer()


@dataclass(frozen=True)
class Row:
    path: Path
    source: str
    language: str
    reference: str


def rows() -> list[Row]:
    manifest = [json.loads(line) for line in (EVAL / "manifest.jsonl").read_text().splitlines()]
    keep = [r for r in manifest if r["reference_quality"] == "human" and r.get("use_for_wer") is not False]
    return [Row(EVAL / r["path"], r["path"].split("/")[0], r["language"], r["reference"]) for r in keep]


def error_rate(language: str, references: list[str], hypotheses: list[str]) -> float:
    normalise = ENGLISH if language == "en" else BASIC
    refs = [normalise(r) for r in references]
    hyps = [normalise(h) for h in hypotheses]
    if language in CHARACTER_SCORED:
        return 100 * float(jiwer.cer(refs, hyps))
    return 100 * float(jiwer.wer(refs, hyps))


def farm_texts(model: str, batch: list[Row], language: str | None) -> list[str]:
    combo = Combo(model=model, devices="cpu", compute_type="int8", cpu_workers=2, cpu_threads=1)
    with private_farm(combo, load_settings()) as (client, _):
        jobs = [client.submit(row.path, beam_size=5, language=language or row.language) for row in batch]
        return [job.result(timeout=1800)["text"] for job in jobs]


def faster_whisper_longform(batch: list[Row]) -> list[str]:
    from faster_whisper import WhisperModel

    model = WhisperModel(resolve_model("tiny.en", "ctranslate2", "/tmp"), compute_type="int8", cpu_threads=2)
    texts = []
    for row in batch:
        segments, _ = model.transcribe(str(row.path), beam_size=5, language="en")
        texts.append("".join(s.text for s in segments))
    return texts


def table_by(key: str, scored: list[tuple[Row, str]]) -> list[str]:
    groups: dict[tuple[str, str], list[tuple[Row, str]]] = defaultdict(list)
    for row, text in scored:
        groups[(getattr(row, key), row.language)].append((row, text))
    lines = [f"| {key} | language | clips | WER/CER % |", "| --- | --- | ---: | ---: |"]
    for (name, language), items in sorted(groups.items()):
        rate = error_rate(language, [r.reference for r, _ in items], [t for _, t in items])
        metric = "CER" if language in CHARACTER_SCORED else "WER"
        lines.append(f"| {name} | {language} | {len(items)} | {rate:.1f} ({metric}) |")
    return lines


def main() -> None:
    every = rows()
    english = [r for r in every if r.language == "en" and r.source != "longform"]
    other = [r for r in every if r.language != "en"]
    longform = [r for r in every if r.source == "longform"]
    scored = list(zip(english, farm_texts("tiny.en", english, "en"), strict=True))
    scored += list(zip(other, farm_texts("base", other, None), strict=True))
    farm_long = farm_texts("tiny.en", longform, "en")
    peer_long = faster_whisper_longform(longform)
    print(f"whisperfarm accuracy over ../shared/eval, {os.cpu_count()} cores; tiny.en (en), base (others); beam 5")
    print("\n".join(table_by("source", scored)))
    print()
    print("| long-form file | farm WER % | faster-whisper long-form WER % | difference |")
    print("| --- | ---: | ---: | ---: |")
    for row, ours, theirs in zip(longform, farm_long, peer_long, strict=True):
        a = error_rate("en", [row.reference], [ours])
        b = error_rate("en", [row.reference], [theirs])
        print(f"| {row.path.name} | {a:.2f} | {b:.2f} | {a - b:+.2f} |")


if __name__ == "__main__":
    main()
