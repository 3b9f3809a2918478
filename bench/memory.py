"""Where a worker's memory goes over many jobs: RSS and the Python heap, job after job.

Runs the worker's own runtime (the threads pool's batcher, 2 job threads, the tiny.en
CTranslate2 model) in this process over distinct LibriSpeech clips, so Celery is out of
the picture, and prints RSS after each block of jobs and, with --trace, the allocation
sites that grew most between the end of the warm-up and the end (tracemalloc). A
benchmark, not a test. Compare glibc's arenas with ``MALLOC_ARENA_MAX=2``.

    .venv/bin/python bench/memory.py [--jobs 300] [--warm-up 20] [--trace]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import tracemalloc
from dataclasses import replace

import psutil
from corpus import librispeech

from farm.config import load_settings
from farm.serve.runtime import build_runtime


def farm_run(jobs: int, warm_up: int, block: int, arena_max: str, malloc: list[str]) -> None:
    """The same over a real farm: one worker process (threads pool), RSS of its whole tree."""
    from farm.planning.benchmark import Combo, private_farm

    combo = Combo(devices="cpu", compute_type="int8", beam_size=1, concurrency=2, cpu_threads=2)
    if arena_max:
        os.environ["MALLOC_ARENA_MAX"] = arena_max  # the worker inherits it
    for setting in malloc:  # e.g. MALLOC_MMAP_THRESHOLD_=131072
        key, _, value = setting.partition("=")
        os.environ[key] = value
    clips = librispeech()
    marks: list[tuple[int, float, float]] = []
    started = time.monotonic()
    with private_farm(combo, load_settings()) as (client, pid):
        for first in range(0, jobs, block):
            batch = [clips[i % len(clips)].path for i in range(first, min(first + block, jobs))]
            for job in client.submit_many(batch, language="en", beam_size=1):
                job.result(timeout=600)
            done = min(first + block, jobs)
            if done % block == 0 or done == warm_up:
                marks.append((done, time.monotonic() - started, tree_mib(pid)))
    report(marks, warm_up, jobs)  # warm_up: a multiple of block


def tree_mib(pid: int) -> float:
    process = psutil.Process(pid)
    return float(sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])) / 2**20


def rss_mib() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def run(jobs: int, warm_up: int, trace: bool, block: int) -> None:
    settings = replace(load_settings(), pool="threads", concurrency=2, beam_size=1, language="en", cpu_threads=2)
    runtime = build_runtime(settings)
    clips = librispeech()
    done = [0]
    lock = threading.Lock()
    marks: list[tuple[int, float, float]] = []
    snapshots: list[tracemalloc.Snapshot] = []
    started = time.monotonic()

    def one(index: int) -> None:
        from farm.inference.pipeline import run_job

        spec = runtime.parse({"audio": str(clips[index % len(clips)].path), "options": {"beam_size": 1}})
        run_job(spec, runtime, lambda _percent: None, f"job-{index}")
        with lock:
            done[0] += 1
            count = done[0]
        if count == warm_up and trace:
            snapshots.append(tracemalloc.take_snapshot())
        if count % block == 0 or count == warm_up:
            marks.append((count, time.monotonic() - started, rss_mib()))

    def worker(indices: list[int]) -> None:
        for index in indices:
            one(index)

    if trace:
        tracemalloc.start(12)
    threads = [threading.Thread(target=worker, args=([i for i in range(jobs) if i % 2 == t],)) for t in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report(marks, warm_up, jobs)
    if trace and snapshots:
        top(snapshots[0], tracemalloc.take_snapshot())


def report(marks: list[tuple[int, float, float]], warm_up: int, jobs: int) -> None:
    shown = {key: value for key, value in os.environ.items() if key.startswith("MALLOC_")}
    print(f"glibc malloc variables set here: {shown or '(none: farm worker sets its own defaults)'}")
    print("| jobs | s | RSS MiB |\n| ---: | ---: | ---: |")
    for count, seconds, rss in sorted(marks):
        print(f"| {count} | {seconds:.0f} | {rss:.0f} |")
    base = next(rss for count, _, rss in marks if count == warm_up)
    final = max(marks)[2]
    growth = (final - base) / base
    print(f"growth after {warm_up} warm-up jobs to {jobs}: {base:.0f} -> {final:.0f} MiB ({growth:+.1%})")


def top(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, count: int = 12) -> None:
    print("largest Python heap growth (tracemalloc, by traceback):")
    for stat in after.compare_to(before, "traceback")[:count]:
        frame = next((f for f in stat.traceback if "/farm/" in f.filename), stat.traceback[-1])
        print(f"  {stat.size_diff / 2**10:+9.0f} KiB {stat.count_diff:+6d} blocks  {frame.filename}:{frame.lineno}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--trace", action="store_true", help="tracemalloc (slows jobs down)")
    parser.add_argument("--farm", action="store_true", help="through a real farm instead of in process")
    parser.add_argument("--arena-max", default="", help="MALLOC_ARENA_MAX for the farm's worker")
    parser.add_argument("--malloc", action="append", default=[], help="another glibc variable, KEY=VALUE")
    args = parser.parse_args()
    if args.farm:
        farm_run(args.jobs, args.warm_up, args.block, args.arena_max, args.malloc)
    else:
        run(args.jobs, args.warm_up, args.trace, args.block)


if __name__ == "__main__":
    main()
