"""Accuracy of the farm against faster-whisper called directly, on the same clips.

Runs the 50 LibriSpeech test-other clips from ../shared/eval (human references only)
through (1) faster-whisper's WhisperModel.transcribe in this process and (2) the farm
end to end (client -> private Redis -> one `farm worker` process), with the same model
and decoding options, and prints WER and throughput for both. A benchmark, not a test.

    .venv/bin/python bench/wer.py [--eval ../shared/eval] [--beam-size 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import corpus
from corpus import EVAL, Clip, librispeech

from farm.config import load_settings
from farm.inference.weights.models import resolve_model
from farm.planning.benchmark import AudioSet, Combo, measure


@dataclass(frozen=True)
class Run:
    name: str
    wer: float
    wall_s: float


def run_direct(clips: list[Clip], beam_size: int, threads: int) -> Run:
    from faster_whisper import WhisperModel

    model = WhisperModel(resolve_model("tiny.en", "ctranslate2", "/tmp"), compute_type="int8", cpu_threads=threads)
    started = time.perf_counter()
    texts = []
    for clip in clips:
        segments, _ = model.transcribe(str(clip.path), beam_size=beam_size, language="en")
        texts.append("".join(s.text for s in segments))
    wall = time.perf_counter() - started
    return Run("faster-whisper direct (in process)", corpus.wer([c.reference for c in clips], texts), wall)


def run_farm(clips: list[Clip], beam_size: int, threads: int) -> Run:
    # One worker process, the model's threads as above; timed after every job slot warmed up.
    combo = Combo(devices="cpu", compute_type="int8", beam_size=beam_size, cpu_threads=threads, cpu_workers=1)
    audio = AudioSet([c.path for c in clips], [c.duration for c in clips], [c.reference for c in clips])
    measured = measure(combo, audio, load_settings(), {"language": "en"})
    assert measured.wer is not None
    return Run("whisperfarm (client -> Redis -> worker)", measured.wer, measured.wall_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--eval", type=Path, default=EVAL)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    clips = librispeech(args.eval)
    audio_s = sum(c.duration for c in clips)
    runs = [run_direct(clips, args.beam_size, args.threads), run_farm(clips, args.beam_size, args.threads)]
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"tiny.en, CTranslate2 int8, beam {args.beam_size}, {args.threads} threads, {len(clips)} clips")
    print(f"({audio_s:.0f} s of audio), {machine}")
    print("| run | WER % | wall s | xRT |")
    print("| --- | ---: | ---: | ---: |")
    for run in runs:
        print(f"| {run.name} | {run.wer:.2f} | {run.wall_s:.1f} | {audio_s / run.wall_s:.1f} |")


if __name__ == "__main__":
    main()
