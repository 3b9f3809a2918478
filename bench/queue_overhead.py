"""What the queue costs: 1000 one-second jobs through the farm versus the engine in process.

Each job is a different second of real speech (cut from the 50 LibriSpeech clips, the
long-form files and other English recordings), so packing and caching get no help from repeats.

Latency: jobs sent one at a time (submit, wait for the result, next). The engine in
process (decode + transcribe the same file, same threads) and the farm take turns in
blocks of 25 jobs, so the machine's drift lands on both alike while neither runs right
after the other's threads (which spin for a while after each call). "Added" is the
farm's percentile minus the in-process one. The farm's own timings split the added time:
what the worker spends outside the engine, and the rest (publish, delivery, result).
Throughput: all jobs submitted at once. A benchmark, not a test.

    .venv/bin/python bench/queue_overhead.py [--jobs 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from corpus import librispeech, longform, other_english

from farm.client import Client
from farm.config import load_settings
from farm.inference import audio
from farm.inference.engines import load_engine
from farm.inference.engines.base import Engine, EngineConfig, TranscribeOptions
from farm.inference.weights.models import resolve_model
from farm.planning.benchmark import Combo, private_farm

THREADS = 2
BLOCK = 25
OPTIONS = {"language": "en", "beam_size": 1}
SECOND = audio.SAMPLE_RATE
# One job at a time: one worker process whose engine has the threads the in-process one has.
LATENCY_FARM = Combo(devices="cpu", compute_type="int8", beam_size=1, concurrency=8, cpu_threads=THREADS)
# All at once: two single-threaded processes, each packing up to 24 short jobs per round
# (200 jobs: 3.9 jobs/s at 1 x 2 threads x 8 jobs, 5.5 at 1 x 2 x 24, 6.6 at 2 x 1 x 24).
BURST_FARM = Combo(devices="cpu", compute_type="int8", beam_size=1, concurrency=24, cpu_threads=1, cpu_workers=2)


@dataclass
class Timings:
    local_decode: list[float] = field(default_factory=list)
    local_engine: list[float] = field(default_factory=list)
    farm: list[float] = field(default_factory=list)
    worker_total: list[float] = field(default_factory=list)  # the job inside the worker
    worker_engine: list[float] = field(default_factory=list)  # of which the engine call

    @property
    def local(self) -> list[float]:
        return [d + e for d, e in zip(self.local_decode, self.local_engine, strict=True)]


def speech_seconds() -> Iterator[np.ndarray]:
    for clip in [*librispeech(), *longform(), *other_english()]:
        samples = audio.decode(clip.path)
        for start in range(0, len(samples) - SECOND + 1, SECOND):
            yield samples[start : start + SECOND]


def write_clips(directory: Path, count: int) -> list[Path]:
    paths = []
    for index, samples in zip(range(count), speech_seconds(), strict=False):
        paths.append(directory / f"second_{index:04d}.wav")
        with wave.open(str(paths[-1]), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SECOND)
            out.writeframes((samples * 32767).astype(np.int16).tobytes())
    if len(paths) < count:
        raise SystemExit(f"only {len(paths)} distinct seconds of speech in ../shared/eval")
    return paths


def in_process_engine() -> Engine:
    model = resolve_model("tiny.en", "ctranslate2", "/tmp")
    return load_engine("ctranslate2", EngineConfig(model=model, compute_type="int8", cpu_threads=THREADS))


def time_local(engine: Engine, clip: Path, timings: Timings) -> None:
    started = time.perf_counter()
    samples = audio.decode(clip)
    decoded = time.perf_counter()
    engine.transcribe([samples], TranscribeOptions(language="en", beam_size=1))
    timings.local_decode.append(decoded - started)
    timings.local_engine.append(time.perf_counter() - decoded)


def time_farm(client: Client, clip: Path, timings: Timings) -> None:
    started = time.perf_counter()
    result = client.submit(clip, **OPTIONS).result(timeout=60)
    timings.farm.append(time.perf_counter() - started)
    timings.worker_total.append(result["timings"]["total_s"])
    timings.worker_engine.append(result["timings"]["decode_s"])


def latencies(client: Client, engine: Engine, clips: list[Path]) -> Timings:
    for clip in clips[:10]:  # warm both up
        time_local(engine, clip, Timings())
        time_farm(client, clip, Timings())
    timings = Timings()
    for start in range(0, len(clips), BLOCK):
        block = clips[start : start + BLOCK]
        for clip in block:
            time_local(engine, clip, timings)
        for clip in block:
            time_farm(client, clip, timings)
    return timings


def burst(client: Client, clips: list[Path]) -> float:
    started = time.perf_counter()
    for job in client.submit_many(clips, **OPTIONS):
        job.result(timeout=900)
    return time.perf_counter() - started


def ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def row(name: str, values: list[float]) -> None:
    print(f"| {name} | {ms(values, 50):.1f} | {ms(values, 99):.1f} |")


def report(timings: Timings, burst_s: float, jobs: int) -> None:
    print(f"{jobs} one-second jobs (distinct seconds of speech), tiny.en int8, greedy, {THREADS} threads")
    print("| measure | p50 ms | p99 ms |\n| --- | ---: | ---: |")
    row("in process: decode the file", timings.local_decode)
    row("in process: decode + transcribe", timings.local)
    row("farm, one job at a time: submit -> result", timings.farm)
    direct = (ms(timings.farm, 50) - ms(timings.local, 50), ms(timings.farm, 99) - ms(timings.local, 99))
    print(f"| added, farm percentile - in-process percentile | {direct[0]:.1f} | {direct[1]:.1f} |")
    # Per job, without the engine's own run-to-run noise: the farm's time minus the time
    # its engine call took, minus what decoding costs in process.
    decode = ms(timings.local_decode, 50) / 1000
    engines = timings.worker_engine
    row("added per job: farm - its engine call - in-process decode", _minus(timings.farm, engines, decode))
    row("... of it outside the worker: publish, delivery, result", _minus(timings.farm, timings.worker_total, 0))
    row("... of it in the worker, outside engine and decode", _minus(timings.worker_total, engines, decode))
    local_rate = len(timings.local) / sum(timings.local)
    print(f"burst of {jobs} jobs at once (2 processes x 1 thread, 24 jobs each): {jobs / burst_s:.1f} jobs/s")
    print(f"in process, one at a time: {local_rate:.1f} jobs/s")


def _minus(totals: list[float], parts: list[float], constant: float) -> list[float]:
    return [t - p - constant for t, p in zip(totals, parts, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clips = write_clips(Path(tmp), args.jobs)
        engine = in_process_engine()
        with private_farm(LATENCY_FARM, load_settings()) as (client, _):
            timings = latencies(client, engine, clips)
        del engine  # its threads would compete with the burst's workers
        with private_farm(BURST_FARM, load_settings()) as (client, _):
            burst(client, clips[:24])  # warm up
            burst_s = burst(client, clips)
    report(timings, burst_s, args.jobs)


if __name__ == "__main__":
    main()
