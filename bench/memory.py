"""Where a worker's memory goes over many jobs: RSS and the Python heap, job after job.

Runs the worker's own runtime (the threads pool's batcher, 2 job threads, the tiny.en
CTranslate2 model) in this process over distinct LibriSpeech clips, so Celery is out of
the picture, and prints RSS after each block of jobs and, with --trace, the allocation
sites that grew most between the end of the warm-up and the end (tracemalloc). A
benchmark, not a test. Compare glibc's arenas with ``MALLOC_ARENA_MAX=2``.

``--peaks ROUNDS``: issue 17's measure instead. One farm with the shipped settings; each
round sends the 50 clips at once (packed) and then one at a time (lone decodes), and
after each phase prints every worker process's peak RSS (the kernel's high-water mark,
VmHWM) and current RSS. Round 1 is the warm-up: the growth that counts is each peak's
rise per round (50 + 50 jobs) after it.

    .venv/bin/python bench/memory.py [--jobs 300] [--warm-up 20] [--trace]
    .venv/bin/python bench/memory.py --peaks 5
"""

from __future__ import annotations

import argparse
import itertools
import os
import threading
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

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


Rows = list[tuple[int, str, list[tuple[float, float]]]]  # round, phase, (peak, current) MiB per process


def peaks_run(rounds: int) -> None:
    """Every worker process's peak and current RSS after each phase of each round."""
    from throughput import shipped

    from farm.planning.benchmark import private_farm

    settings = load_settings()
    combo = shipped(settings)
    options = {"beam_size": combo.beam_size, "language": "en"}
    clips = [c.path for c in librispeech()]
    rows: Rows = []
    with private_farm(combo, settings) as (client, pid):
        for job in client.submit_many([clips[0]] * (combo.processes * combo.concurrency), **options):
            job.result(timeout=600)
        rows.append((0, "warm-up", worker_memory(pid)))
        for number in range(1, rounds + 1):
            for job in client.submit_many(clips, **options):
                job.result(timeout=3600)
            rows.append((number, "50 at once", worker_memory(pid)))
            for clip in clips:
                client.submit(clip, **options).result(timeout=3600)
            rows.append((number, "50 one at a time", worker_memory(pid)))
            print(f"round {number} done; {os.getloadavg()}", flush=True)
    peaks_report(rows, combo.processes, combo.cpu_threads, combo.concurrency)


def worker_memory(supervisor: int) -> list[tuple[float, float]]:
    """(peak, current) RSS in MiB of each worker process, by pid."""
    children = sorted(psutil.Process(supervisor).children(recursive=True), key=lambda p: p.pid)
    return [(_status_mib(child.pid, "VmHWM"), _status_mib(child.pid, "VmRSS")) for child in children]


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no {field} for pid {pid}")


def peaks_report(rows: Rows, processes: int, threads: int, jobs: int) -> None:
    print(f"farm: {processes} processes x {threads} threads, concurrency {jobs}; per process: peak / current RSS MiB")
    print("| round | phase | " + " | ".join(f"process {i + 1}" for i in range(processes)) + " |")
    print("| ---: | --- |" + " ---: |" * processes)
    for number, phase, memory in rows:
        cells = " | ".join(f"{peak:.1f} / {now:.1f}" for peak, now in memory)
        print(f"| {number} | {phase} | {cells} |")
    ends = [memory for number, phase, memory in rows if phase == "50 one at a time"]
    for index in range(min(len(m) for m in ends)):
        peaks = [m[index][0] for m in ends]
        rises = ", ".join(f"{later - earlier:+.1f}" for earlier, later in itertools.pairwise(peaks))
        print(f"process {index + 1}: peak after each round {[round(p, 1) for p in peaks]}; rise per round: {rises}")


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
    parser.add_argument("--peaks", type=int, default=0, help="rounds of the per-process peak measure")
    args = parser.parse_args()
    if args.peaks:
        peaks_run(args.peaks)
    elif args.farm:
        farm_run(args.jobs, args.warm_up, args.block, args.arena_max, args.malloc)
    else:
        run(args.jobs, args.warm_up, args.trace, args.block)


if __name__ == "__main__":
    main()
