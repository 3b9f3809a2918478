"""Chaos soak: a real farm runs distinct real clips while faults are thrown at it at random.

A Redis with appendonly (fsync always) and ``farm worker`` with 2 worker processes
(threads pool) run jobs of real English speech (LibriSpeech, LJ Speech and others)
submitted at a steady pace, while a chaos loop at random intervals:

- ``kill9_worker``: kill -9 one Celery worker process (the supervisor restarts it and
  returns its jobs to the queue);
- ``restart_supervisor``: SIGTERM ``farm worker`` (warm shutdown) and start a new one;
- ``kill9_redis``: kill -9 Redis and start it again on the same files;
- ``poison``: push a malformed envelope or raw garbage on the queue list;
- ``bad_input``: submit a job that must fail with a typed error.

At the end: every good job succeeded exactly once (worker logs) with the text its clip
gets when run alone (WER against that run, and a cross-clip 3-gram leak check), every bad
input got its typed error, the dead-letter list holds the garbage, and the farm still
serves. A benchmark, not a test (``tests/reliability/test_chaos.py`` runs a short one).

    .venv/bin/python bench/chaos.py [--minutes 20] [--jobs 1000] [--json report.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
import redis
from corpus import EVAL, ROOT, Clip, _clip, _rows, librispeech, normalise, other_english, wer

from farm.client import Client, Job, JobStatus
from farm.config import Settings, load_settings
from farm.constants import DEAD_LETTER_KEY, SHARED_QUEUE
from farm.serve.redis_server import free_port, redis_binary
from farm.serve.shutdown import stop_process

OPTIONS = {"language": "en", "beam_size": 1}
WRONG_WER = 35.0  # percent: a job whose words differ this much from its clip run alone is wrong
SUCCEEDED = re.compile(r"Task farm\.transcribe\[([0-9a-f-]{36})\] succeeded")
GARBAGE = [
    b"\x00 not a message {",
    b'"just a string"',
    b"{}",
    b'{"body": "", "properties": {"delivery_tag": {"a": 1}}, "headers": "x", "content-type": "application/json"}',
]


@dataclass
class Report:
    jobs: int = 0
    succeeded: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    leaks: int = 0
    bad_inputs: int = 0
    bad_inputs_typed: int = 0
    garbage_pushed: int = 0
    dead_letters: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    max_recovery_s: float = 0.0
    rss_after_warm_up_mib: float = 0.0
    rss_end_mib: float = 0.0
    minutes: float = 0.0
    still_up: bool = False
    problems: list[str] = field(default_factory=list)


class Redis:
    """redis-server with an append-only file, fsync on every write: a kill -9 loses nothing."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port = directory, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "always", "--save", ""]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _until(lambda: _pings(self.url), 30)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


class Farm:
    """``farm worker`` (2 CPU worker processes), restartable, each run logging to its own file."""

    def __init__(self, settings: Settings, directory: Path) -> None:
        self.settings, self.directory = settings, directory
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        url = self.settings.broker_url
        env = os.environ | {"FARM_BROKER_URL": url, "FARM_RESULT_BACKEND": url, "FARM_DEVICES": "cpu",
                            "FARM_CPU_WORKERS": "2", "FARM_CPU_THREADS": "1", "FARM_CONCURRENCY": "2",
                            "PYTHONPATH": str(ROOT)}  # fmt: skip
        self.runs += 1
        with open(self.directory / f"worker-{self.runs}.log", "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "farm.cli", "worker"], env=env, cwd=ROOT,
                                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

    def stop(self, timeout: float = 120) -> None:
        if self.process is not None:
            stop_process(self.process, timeout)

    def workers(self) -> list[psutil.Process]:
        if self.process is None or self.process.poll() is not None:
            return []
        return [p for p in psutil.Process(self.process.pid).children() if p.status() != psutil.STATUS_ZOMBIE]

    def rss_mib(self) -> float:
        if self.process is None:
            return 0.0
        tree = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        return float(sum(p.memory_info().rss for p in tree)) / 2**20

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.directory.glob("worker-*.log")))


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def _until(condition: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def _retrying(action: Any, attempts: int = 60) -> Any:
    """Run ``action``, retrying for about a minute while Redis is away."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception:  # the broker is restarting: the client raises whatever kombu or redis-py raises
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    return None


@dataclass
class Soak:
    clips: list[Clip]
    alone: dict[Path, str]
    farm: Farm
    redis: Redis
    client: Client
    directory: Path
    report: Report = field(default_factory=Report)
    good: dict[str, Clip] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)  # job id -> the error type it must get
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    submitted: list[Job] = field(default_factory=list)  # good jobs, in order, as the producer submits them
    last_success: float = 0.0

    def submit_good(self, index: int) -> Job:
        clip = self.clips[index % len(self.clips)]
        job = _retrying(lambda: self.client.submit(clip.path, **OPTIONS))
        with self.lock:
            self.good[job.id] = clip
        return job

    def bad_input(self) -> None:
        path = self.directory / f"notes-{len(self.bad)}.wav"
        path.write_bytes(b"a shopping list, not a recording\n" * 40)
        job = _retrying(lambda: self.client.submit(path, **OPTIONS))
        with self.lock:
            self.bad[job.id] = "AudioDecodeError"

    def poison(self) -> None:
        item = random.choice(GARBAGE)
        _retrying(lambda: redis.Redis.from_url(self.redis.url).lpush(SHARED_QUEUE, item))
        self.report.garbage_pushed += 1


def lj_speech() -> list[Clip]:
    """The 32 LJ Speech sentences as separate clips."""
    rows = [r for r in _rows(EVAL) if str(r["path"]).startswith("coqui_ljspeech/")]
    return [_clip(EVAL, r) for r in sorted(rows, key=lambda r: str(r["path"]))]


def alone_texts(clips: list[Clip]) -> dict[Path, str]:
    """Each clip's text when run alone: the worker's runtime in this process, no packing neighbours."""
    from farm.inference.pipeline import run_job
    from farm.serve.runtime import build_runtime

    runtime = build_runtime(replace(load_settings(), pool="prefork", beam_size=1, language="en", cpu_threads=1))
    texts = {}
    for clip in clips:
        result = run_job(runtime.parse({"audio": str(clip.path), "options": OPTIONS}), runtime, lambda _: None)
        assert not hasattr(result, "messages")
        texts[clip.path] = str(result["text"])  # type: ignore[index]
    return texts


def producer(soak: Soak, jobs: int, seconds: float, in_flight: int) -> list[Job]:
    """Submit ``jobs`` good jobs spread over ``seconds``, never more than ``in_flight`` unfinished."""
    submitted = soak.submitted
    started = time.monotonic()
    for index in range(jobs):
        due = started + seconds * index / jobs
        while time.monotonic() < due or _unfinished(submitted[-in_flight * 2 :]) >= in_flight:
            time.sleep(0.2)
        submitted.append(soak.submit_good(index))
    return submitted


def _unfinished(jobs: list[Job]) -> int:
    try:
        return sum(not job.status().done for job in jobs)
    except Exception:  # Redis restarting: count them all as busy
        return len(jobs)


def chaos(soak: Soak, interval: tuple[float, float], kinds: list[str]) -> None:
    """Faults at random intervals, in a shuffled order that deals every kind before any repeats."""
    deck: list[str] = []
    while not soak.stop.wait(random.uniform(*interval)):
        deck = deck or random.sample(kinds, len(kinds))
        kind = deck.pop()
        soak.report.faults[kind] += 1
        at = time.monotonic()
        FAULTS[kind](soak)
        if kind in ("kill9_worker", "restart_supervisor", "kill9_redis"):
            _recovery(soak, kind, at)


def _recovery(soak: Soak, kind: str, at: float) -> None:
    """Seconds from the fault until a job succeeds again."""
    recovered = _until(lambda: soak.last_success > at or soak.stop.is_set(), 300)
    took = time.monotonic() - at
    soak.report.max_recovery_s = max(soak.report.max_recovery_s, took)
    print(f"  {kind}: serving again after {took:.1f} s" + ("" if recovered else " (NOT RECOVERED)"), flush=True)


def _kill9_worker(soak: Soak) -> None:
    workers = soak.farm.workers()
    if workers:
        random.choice(workers).kill()


def _restart_supervisor(soak: Soak) -> None:
    soak.farm.stop()
    soak.farm.start()


def _kill9_redis(soak: Soak) -> None:
    soak.redis.kill()
    time.sleep(random.uniform(1, 3))
    soak.redis.start()


FAULTS = {
    "kill9_worker": _kill9_worker,
    "restart_supervisor": _restart_supervisor,
    "kill9_redis": _kill9_redis,
    "poison": Soak.poison,
    "bad_input": Soak.bad_input,
}


def watch_successes(soak: Soak) -> None:
    """Note when jobs finish, so each fault's recovery time can be read."""
    seen: set[str] = set()
    while not soak.stop.is_set():
        for job in [job for job in list(soak.submitted) if job.id not in seen][:40]:
            if _state(job) == "succeeded":
                seen.add(job.id)
                soak.last_success = time.monotonic()
        time.sleep(0.5)


def _state(job: Job) -> str:
    try:
        return job.status().state
    except Exception:  # Redis restarting
        return "unknown"


def check(soak: Soak, statuses: dict[str, JobStatus], results: dict[str, str]) -> None:
    report, runs = soak.report, Counter(SUCCEEDED.findall(soak.farm.logs()))
    order = list(soak.good.items())
    common = _common_grams(soak.alone.values())
    for index, (job_id, clip) in enumerate(order):
        report.jobs += 1
        if statuses[job_id].state != "succeeded":
            report.lost += 1
            report.problems.append(f"{job_id} {clip.path.name}: {statuses[job_id].state} {statuses[job_id].error}")
            continue
        report.succeeded += 1
        report.duplicated += runs[job_id] > 1
        text, own = results[job_id], soak.alone[clip.path]
        if own.strip() and wer([own], [text]) > WRONG_WER:
            report.wrong += 1
            report.problems.append(f"{job_id} {clip.path.name}: {text!r} vs alone {own!r}")
        neighbours = {c.path for _, c in order[max(0, index - NEIGHBOURS) : index + NEIGHBOURS + 1]} - {clip.path}
        leaked = _leaked(text, own, clip.reference, [soak.alone[path] for path in neighbours], common)
        if leaked:
            report.leaks += 1
            report.problems.append(f"{job_id} {clip.path.name}: 3-grams of jobs in flight with it {leaked}: {text!r}")
    for job_id, expected in soak.bad.items():
        report.bad_inputs += 1
        report.bad_inputs_typed += statuses[job_id].error_type == expected


# A job's words can reach another job only through a window they shared, so only jobs
# in flight at the same time can leak into each other: the producer keeps at most 8
# unfinished, and jobs a fault returns to the queue run with the next few; 40 on
# either side covers both with room to spare.
NEIGHBOURS = 40


def _leaked(text: str, own: str, reference: str, neighbours: list[str], common: set[tuple[str, ...]]) -> list[str]:
    """3-grams of the job's text that are not its clip's (alone or reference) but are a
    neighbour's; phrases that several clips of the corpus say ("one of the") prove nothing."""
    foreign = _grams(text) - _grams(own) - _grams(reference) - common
    return sorted({" ".join(gram) for other in neighbours for gram in foreign & _grams(other)})


def _common_grams(texts: Iterable[str]) -> set[tuple[str, ...]]:
    """3-grams found in the alone texts of more than one clip."""
    counts = Counter(gram for text in texts for gram in _grams(text))
    return {gram for gram, count in counts.items() if count > 1}


def _grams(text: str) -> set[tuple[str, ...]]:
    """Word 3-grams after Whisper's English normaliser, which drops the fillers ("uh", "um")
    human references keep and Whisper does not write: "and uh that should" is the clip's
    own "and that should", not a leak from another recording of the same speaker."""
    words = normalise(text).split()
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def gather(soak: Soak, jobs: list[str], timeout: float) -> tuple[dict[str, JobStatus], dict[str, str]]:
    handles = [soak.client.job(job_id) for job_id in jobs]
    _until(lambda: all(_state(job) in ("succeeded", "failed", "cancelled") for job in handles), timeout, 2)
    statuses = {job.id: _retrying(job.status) for job in handles}
    results = {j.id: str(_retrying(j.result)["text"]) for j in handles if statuses[j.id].state == "succeeded"}
    return statuses, results


def soak_run(args: argparse.Namespace) -> Report:
    directory = Path(tempfile.mkdtemp(prefix="farm-chaos-"))
    clips = (librispeech() + lj_speech() + other_english())[: args.clips]
    print(f"{len(clips)} distinct clips; running each alone for reference texts...", flush=True)
    alone = alone_texts(clips)
    (directory / "redis").mkdir()
    server = Redis(directory / "redis")
    server.start()
    settings = replace(load_settings(), broker_url=server.url, result_backend=server.url)
    farm = Farm(settings, directory)
    soak = Soak(clips, alone, farm, server, Client(settings), directory)
    try:
        return _run(soak, args)
    finally:
        soak.stop.set()
        farm.stop(timeout=30)
        server.kill()
        print(f"logs in {directory}")


def _run(soak: Soak, args: argparse.Namespace) -> Report:
    soak.farm.start()
    warm = [soak.submit_good(i) for i in range(args.warm_up)]
    _until(lambda: all(_state(job) == "succeeded" for job in warm), 600, 1)
    soak.report.rss_after_warm_up_mib = soak.farm.rss_mib()
    started = time.monotonic()
    watcher = threading.Thread(target=watch_successes, args=(soak,), daemon=True)
    kinds = args.faults.split(",")
    faults = threading.Thread(target=chaos, args=(soak, (args.min_gap, args.max_gap), kinds), daemon=True)
    watcher.start()
    faults.start()
    producer(soak, args.jobs, args.minutes * 60, in_flight=8)
    soak.stop.set()
    faults.join()
    statuses, results = gather(soak, [*soak.good, *soak.bad], timeout=900)
    soak.report.minutes = (time.monotonic() - started) / 60
    soak.report.rss_end_mib = soak.farm.rss_mib()
    check(soak, statuses, results)
    soak.report.dead_letters = int(redis.Redis.from_url(soak.redis.url).llen(DEAD_LETTER_KEY))
    probe = soak.submit_good(0)
    soak.report.still_up = _state_after(probe, 300) == "succeeded" and soak.farm.process is not None
    return soak.report


def _state_after(job: Job, timeout: float) -> str:
    _until(lambda: _state(job) in ("succeeded", "failed"), timeout, 1)
    return _state(job)


def print_report(report: Report) -> None:
    rows = [
        ("jobs (good)", report.jobs), ("succeeded", report.succeeded), ("lost", report.lost),
        ("duplicated", report.duplicated), ("wrong text", report.wrong), ("cross-clip leaks", report.leaks),
        ("bad inputs typed", f"{report.bad_inputs_typed}/{report.bad_inputs}"),
        ("garbage pushed / dead letters", f"{report.garbage_pushed} / {report.dead_letters}"),
        ("faults", ", ".join(f"{kind} {count}" for kind, count in sorted(report.faults.items()))),
        ("max recovery s", f"{report.max_recovery_s:.1f}"),
        ("RSS after warm-up -> end MiB", f"{report.rss_after_warm_up_mib:.0f} -> {report.rss_end_mib:.0f}"),
        ("minutes", f"{report.minutes:.1f}"), ("farm still up", report.still_up),
    ]  # fmt: skip
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    for problem in report.problems[:20]:
        print("  problem:", problem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--clips", type=int, default=200, help="distinct clips at most")
    parser.add_argument("--min-gap", type=float, default=20, help="seconds between faults, at least")
    parser.add_argument("--max-gap", type=float, default=60)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the farm and Redis on the way out
    random.seed(args.seed)
    report = soak_run(args)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(asdict(report) | {"faults": dict(report.faults)}, indent=1))


if __name__ == "__main__":
    main()
