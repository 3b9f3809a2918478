"""Fan-out of one long file: wall time with 1 worker process against 2, in one run.

The 6.5-minute LibriSpeech file (406 s) goes through a fresh farm of each shape with
the default settings (files over 300 s are cut at pauses into ~120 s parts that run
as separate tasks). A benchmark, not a test.

    .venv/bin/python bench/fanout.py
"""

from __future__ import annotations

from corpus import EVAL, LONGFORM

from farm.config import load_settings
from farm.planning.benchmark import AudioSet, Combo, measure


def main() -> None:
    path = EVAL / LONGFORM[0]
    audio = AudioSet([path], [406.53], None)
    walls = {}
    for workers in (1, 2):
        combo = Combo(devices="cpu", compute_type="int8", cpu_workers=workers, cpu_threads=1, concurrency=4)
        short = EVAL / "openai_whisper" / "jfk.flac"
        walls[workers] = measure(combo, audio, load_settings(), options={"language": "en"}, warm_up=short).wall_s
    print(f"{path.name}, tiny.en int8, beam 5, parts of ~120 s, 1 thread per process")
    print("| worker processes | wall s | xRT |")
    print("| ---: | ---: | ---: |")
    for workers, wall in walls.items():
        print(f"| {workers} | {wall:.1f} | {406.53 / wall:.1f} |")
    print(f"2 workers / 1 worker wall time: {walls[2] / walls[1]:.2f}")


if __name__ == "__main__":
    main()
