"""What the queue costs: 1000 one-second jobs through the farm versus the engine in process.

Latency: jobs sent one at a time (submit, wait for the result, next), so each job's
latency is its own; "added" is the farm's percentile minus the in-process median
(decode + transcribe of the same 1 s file). Throughput: all jobs submitted at once.
A benchmark, not a test.

    .venv/bin/python bench/queue_overhead.py [--jobs 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
from corpus import EVAL

from farm import audio
from farm.benchmark import Combo, private_farm
from farm.config import load_settings
from farm.engines import load_engine
from farm.engines.base import EngineConfig, TranscribeOptions
from farm.models import resolve_model

OPTIONS = {"language": "en", "beam_size": 1}


def one_second_clip(directory: Path) -> Path:
    samples = audio.decode(EVAL / "openai_whisper" / "jfk.flac")[16000 * 3 : 16000 * 4]
    target = directory / "one_second.wav"
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((samples * 32767).astype(np.int16).tobytes())
    return target


def in_process(clip: Path, jobs: int) -> list[float]:
    model = resolve_model("tiny.en", "ctranslate2", "/tmp")
    engine = load_engine("ctranslate2", EngineConfig(model=model, compute_type="int8", cpu_threads=2))
    options = TranscribeOptions(language="en", beam_size=1)
    latencies = []
    for _ in range(jobs + 5):
        started = time.perf_counter()
        engine.transcribe([audio.decode(clip)], options)
        latencies.append(time.perf_counter() - started)
    return latencies[5:]  # the first calls warm caches up


def through_farm(clip: Path, jobs: int) -> tuple[list[float], float]:
    combo = Combo(devices="cpu", compute_type="int8", beam_size=1, concurrency=8, cpu_threads=2)
    with private_farm(combo, load_settings()) as (client, _):
        for job in client.submit_many([clip] * 10, **OPTIONS):
            job.result(timeout=60)
        latencies = []
        for _ in range(jobs):
            started = time.perf_counter()
            client.submit(clip, **OPTIONS).result(timeout=60)
            latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        for job in client.submit_many([clip] * jobs, **OPTIONS):
            job.result(timeout=600)
        burst_s = time.perf_counter() - started
    return latencies, burst_s


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = one_second_clip(Path(tmp))
        local = in_process(clip, args.jobs)
        farm, burst_s = through_farm(clip, args.jobs)
    base = statistics.median(local)
    print(f"{args.jobs} one-second jobs, tiny.en int8 greedy, 2 threads")
    print("| measure | p50 ms | p99 ms |")
    print("| --- | ---: | ---: |")
    print(f"| engine in process (decode + transcribe) | {base * 1000:.1f} | {percentile(local, 99) * 1000:.1f} |")
    print(f"| farm, one job at a time | {percentile(farm, 50) * 1000:.1f} | {percentile(farm, 99) * 1000:.1f} |")
    added50 = (percentile(farm, 50) - base) * 1000
    added99 = (percentile(farm, 99) - base) * 1000
    print(f"| added by the farm | {added50:.1f} | {added99:.1f} |")
    print(f"burst of {args.jobs} jobs: {args.jobs / burst_s:.1f} jobs/s ({burst_s:.1f} s)")


if __name__ == "__main__":
    main()
