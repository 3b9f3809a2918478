"""A lone job against a full farm, for several thread settings, in interleaved rounds.

The farm's CPU processes each get ``cpu_threads`` CTranslate2 threads. One thread each
uses every core under load but gives a lone job half the machine; more threads give a
lone job every core but oversubscribe the CPU under load. Each configuration is a real
farm (private Redis, ``farm worker``, the shipped settings except what it names), warmed
up, then measured two ways:

  farm-1  the first ``--clips`` short clips, one at a time (the next submitted when the
          last returned: one user, an idle farm);
  farm    all 50 short clips submitted at once (a busy farm).

A reference row, ``fw-seq``, runs faster-whisper in one process with every core on the
farm-1 clips (what a single-process server does for one request). Rounds rotate the
order of the configurations so drift on a shared machine lands on all of them; ratios
within a round are what count. A benchmark, not a test.

    .venv/bin/python bench/idle_threads.py [--rounds 3] [--clips 12] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from corpus import Clip, librispeech
from throughput import fw_sequential, load, shipped

from farm.client import Client
from farm.config import Settings, load_settings
from farm.serve.embedded import local_farm


@dataclass(frozen=True)
class Config:
    name: str
    cpu_threads: int
    env: dict[str, str]
    processes: int = 2  # the shipped process count on this 2-core machine
    concurrency: int = 0  # 0: the shipped concurrency


CONFIGS = {
    "t1": Config("t1", 1, {}),
    "t2": Config("t2", 2, {}),
    "t2-passive": Config("t2-passive", 2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "t1-passive": Config("t1-passive", 1, {"OMP_WAIT_POLICY": "PASSIVE"}),
    # one process with both cores, holding as many jobs as the two shipped processes do
    "p1t2c8": Config("p1t2c8", 2, {}, processes=1, concurrency=8),
    # the lone-job gap: one process alone, and glibc's default arena count (8 per core)
    "p1t2": Config("p1t2", 2, {}, processes=1),
    "t2-arenas": Config("t2-arenas", 2, {"MALLOC_ARENA_MAX": "16"}),
}


@dataclass(frozen=True)
class Result:
    round: int
    config: str
    phase: str
    audio_s: float
    wall_s: float

    @property
    def xrt(self) -> float:
        return self.audio_s / self.wall_s


def measure(config: Config, settings: Settings, lone: list[Clip], number: int) -> list[Result]:
    combo = replace(shipped(settings), cpu_workers=config.processes, cpu_threads=config.cpu_threads)
    combo = replace(combo, concurrency=config.concurrency or combo.concurrency)
    options = {"beam_size": combo.beam_size, "language": "en"}
    with local_farm(settings, combo.env() | config.env, config.processes) as farm:
        client = Client(farm.settings)
        try:
            _warm(client, lone[0], config.processes * combo.concurrency, options)
            one = _timed(lambda: [_one(client, c, options) for c in lone])
            every = librispeech()
            burst = _timed(lambda: _all(client, every, options))
        finally:
            client.close()
    return [
        Result(number, config.name, "farm-1", _audio(lone), one),
        Result(number, config.name, "farm", _audio(every), burst),
    ]


def _warm(client: Client, clip: Clip, count: int, options: dict[str, object]) -> None:
    for job in client.submit_many([clip.path] * count, **options):
        job.result(timeout=600)


def _one(client: Client, clip: Clip, options: dict[str, object]) -> str:
    return str(client.submit(clip.path, **options).result(timeout=3600)["text"])


def _all(client: Client, clips: list[Clip], options: dict[str, object]) -> list[str]:
    return [str(job.result(timeout=3600)["text"]) for job in client.submit_many([c.path for c in clips], **options)]


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _audio(clips: list[Clip]) -> float:
    return sum(c.duration for c in clips)


def fw_reference(lone: list[Clip], number: int) -> Result:
    argv = [sys.executable, __file__, "--child", "--clips", str(len(lone))]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return Result(number, "fw-seq", "farm-1", _audio(lone), float(out))


def child_main(lone: list[Clip]) -> None:
    one = fw_sequential(load_settings())
    one(lone[0])  # warm-up, untimed
    print(_timed(lambda: [one(c) for c in lone]))


def run_round(number: int, names: list[str], settings: Settings, lone: list[Clip]) -> list[Result]:
    shift = number % len(names)
    order = names[shift:] + names[:shift]
    print(f"round {number + 1} order {order}; {load()}", file=sys.stderr, flush=True)
    results = [fw_reference(lone, number + 1)]
    for name in order:
        results += measure(CONFIGS[name], settings, lone, number + 1)
        print(f"  {name} done; {load()}", file=sys.stderr, flush=True)
    return results


def table(results: list[Result], names: list[str], rounds: int) -> str:
    xrt = {(r.round, r.config, r.phase): r.xrt for r in results}
    lines = ["| config | phase | " + " | ".join(f"round {n} xRT" for n in range(1, rounds + 1)) + " | median |"]
    lines.append("| --- | --- |" + " ---: |" * (rounds + 1))
    for name in ["fw-seq", *names]:
        for phase in ("farm-1", "farm"):
            values = [xrt[(n, name, phase)] for n in range(1, rounds + 1) if (n, name, phase) in xrt]
            if values:
                cells = " | ".join(f"{v:.2f}" for v in values)
                lines.append(f"| {name} | {phase} | {cells} | {statistics.median(values):.2f} |")
    base = names[0]
    for name in names[1:]:
        for phase in ("farm-1", "farm"):
            values = [xrt[(n, name, phase)] / xrt[(n, base, phase)] for n in range(1, rounds + 1)]
            cells = " | ".join(f"{v:.2f}" for v in values)
            lines.append(f"| {name} / {base} | {phase} | {cells} | {statistics.median(values):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clips", type=int, default=12, help="short clips for the one-at-a-time phase")
    parser.add_argument("--only", default="t1,t2,t2-passive", help="configurations, the baseline first")
    parser.add_argument("--json", help="also write every result here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lone = librispeech()[: args.clips]
    if args.child:
        child_main(lone)
        return
    names = args.only.split(",")
    settings = load_settings()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores; {load()}", flush=True)
    results = []
    for number in range(args.rounds):
        results += run_round(number, names, settings, lone)
    print(f"end {time.strftime('%H:%M UTC', time.gmtime())}; {load()}")
    print(table(results, names, args.rounds))
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(r) for r in results], out, indent=2)


if __name__ == "__main__":
    main()
