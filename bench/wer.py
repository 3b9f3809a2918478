"""Accuracy of the farm's shipped defaults against faster-whisper, run after run.

The 50 LibriSpeech test-other clips from ../shared/eval (human references) go through
(1) faster-whisper's ``WhisperModel.transcribe`` in this process, one clip at a time (each
clip's lone decode), and (2) ``--runs`` fresh farms with the shipped settings (client ->
private Redis -> ``farm worker``, every clip submitted at once, so clips are packed as
they arrive), with the same model, compute type, beam and language. Per run: WER of both,
and the most words any clip lost against its lone decode. A benchmark, not a test.
With ``--keep-texts DIR``, each run's texts go to ``DIR/run-N.json`` (per clip: reference,
lone decode, farm text, words lost), so a rare bad run can be diagnosed afterwards.

    .venv/bin/python bench/wer.py [--runs 5] [--eval ../shared/eval] [--keep-texts DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import corpus
from corpus import EVAL, Clip, librispeech
from throughput import fw_sequential, shipped

from farm.config import Settings, load_settings
from farm.planning.benchmark import AudioSet, measure


@dataclass(frozen=True)
class Run:
    wer: float
    wall_s: float
    lost: dict[str, int]  # clip name -> words fewer than its lone decode, for clips that lost any
    load: str
    texts: list[str]  # the farm's text per clip, in the order of the clips


def lone_decodes(clips: list[Clip], settings: Settings) -> list[str]:
    one = fw_sequential(settings)
    return [one(clip) for clip in clips]


def farm_run(clips: list[Clip], settings: Settings, lone: list[str]) -> Run:
    audio = AudioSet([c.path for c in clips], [c.duration for c in clips], [c.reference for c in clips])
    measured = measure(shipped(settings), audio, settings, {"language": "en"})
    lost = {c.path.stem: words(a) - words(t) for c, a, t in zip(clips, lone, measured.texts, strict=True)}
    assert measured.wer is not None
    return Run(measured.wer, measured.wall_s, {k: v for k, v in lost.items() if v > 0}, uptime(), measured.texts)


def words(text: str) -> int:
    return len(corpus.normalise(text).split())


def keep_texts(folder: Path, number: int, run: Run, clips: list[Clip], lone: list[str]) -> Path:
    """The run's texts as JSON: a bad run is rare, and without them its cause is lost."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{number}.json"
    record = {"run": number, "wer": run.wer, "load": run.load, "clips": clip_texts(clips, lone, run.texts)}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def clip_texts(clips: list[Clip], lone: list[str], farm: list[str]) -> list[dict[str, object]]:
    return [
        {"name": c.path.stem, "reference": c.reference, "lone": a, "farm": t, "words_lost": words(a) - words(t)}
        for c, a, t in zip(clips, lone, farm, strict=True)
    ]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--eval", type=Path, default=EVAL)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep-texts", type=Path, metavar="DIR", help="write each run's texts to DIR/run-N.json")
    args = parser.parse_args()
    settings = load_settings()
    clips = librispeech(args.eval)
    started = uptime()
    lone = lone_decodes(clips, settings)
    baseline = corpus.wer([c.reference for c in clips], lone)
    audio_s = sum(c.duration for c in clips)
    combo = shipped(settings)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, {os.cpu_count()} cores")
    print(f"model {settings.model}, compute_type {settings.compute_type}, beam {settings.beam_size}, language en,")
    print(f"{len(clips)} clips ({audio_s:.0f} s); farm: {combo.processes} processes x {combo.cpu_threads} threads,")
    print(f"concurrency {combo.concurrency}, pack {combo.pack}; load at start: {started}")
    print(f"faster-whisper, one clip at a time (each clip's lone decode): WER {baseline:.2f} %")
    print("| run | farm WER % | faster-whisper WER % | farm xRT | clips losing words (most lost) | load after |")
    print("| ---: | ---: | ---: | ---: | --- | --- |")
    for number in range(args.runs):
        run = farm_run(clips, settings, lone)
        worst = max(run.lost.values(), default=0)
        losing = f"{len(run.lost)} ({worst}: {', '.join(k for k, v in run.lost.items() if v == worst)})"
        print(
            f"| {number + 1} | {run.wer:.2f} | {baseline:.2f} | {audio_s / run.wall_s:.1f} | "
            f"{losing if run.lost else '0'} | {run.load.split('load average: ')[-1]} |",
            flush=True,
        )
        if args.keep_texts is not None:
            keep_texts(args.keep_texts, number + 1, run, clips, lone)


if __name__ == "__main__":
    main()
