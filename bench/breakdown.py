"""Where a worker's engine time goes: packed rounds against one clip at a time.

Runs the worker's own runtime in this process (the threads pool's batcher, the shipped
settings, ``--jobs`` job threads) over the 50 LibriSpeech clips, once with every job
thread busy (jobs packed into shared windows, as a busy farm does) and once with one
job at a time (each clip decoded alone), and counts the CTranslate2 calls behind each:
``encode`` (one per 30 s window and per seek pass inside one), ``generate`` (one per
pass and per temperature fallback), ``align`` (word times, packed windows only), plus
the time the batcher spent re-running doubtful packed clips alone. The counts do not
depend on the machine's load; the seconds do. A benchmark, not a test.

    .venv/bin/python bench/breakdown.py [--jobs 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import collections
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from corpus import Clip, librispeech, wer

from farm.config import load_settings
from farm.inference.batching import Batcher
from farm.inference.pipeline import Runtime, run_job
from farm.serve.runtime import build_runtime

MODEL_CALLS = ("encode", "generate", "align")


class Tally:
    """Seconds and calls per name, added to by wrapped functions from any thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with self.lock:
                    self.seconds[name] += time.perf_counter() - started
                    self.calls[name] += 1

        return call


class _CountedModel:
    """The CTranslate2 model with its calls counted (it is a C++ object: wrapped, not patched)."""

    def __init__(self, inner: Any, tally: Tally) -> None:
        self._inner, self._tally = inner, tally

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        return self._tally.timed(name, found) if name in MODEL_CALLS else found


def instrumented(runtime: Runtime, tally: Tally) -> None:
    batcher = runtime.transcriber
    assert isinstance(batcher, Batcher), "the threads pool's batcher is what this measures"
    whisper = batcher.engine.model  # type: ignore[attr-defined]  # faster-whisper's WhisperModel
    whisper.model = _CountedModel(whisper.model, tally)
    batcher._alone = tally.timed("re-run or lone clip", batcher._alone)  # type: ignore[method-assign]
    batcher._engine_call = tally.timed("packed window", batcher._engine_call)  # type: ignore[method-assign]


def transcribe_all(runtime: Runtime, clips: list[Clip], threads: int) -> tuple[float, list[str]]:
    texts = [""] * len(clips)
    todo = iter(range(len(clips)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                index = next(todo, None)
            if index is None:
                return
            spec = runtime.parse({"audio": str(clips[index].path), "options": {"language": "en"}})
            texts[index] = str(run_job(spec, runtime, lambda _progress: None, f"job-{index}")["text"])  # type: ignore[index]

    started = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, texts


def report(label: str, wall: float, texts: list[str], clips: list[Clip], tally: Tally) -> None:
    audio = sum(c.duration for c in clips)
    score = wer([c.reference for c in clips], texts)
    print(f"| {label} | {wall:.1f} | {audio / wall:.1f} | {score:.2f} |", end="")
    for name in (*MODEL_CALLS, "packed window", "re-run or lone clip"):
        print(f" {tally.calls[name]} ({tally.seconds[name] / wall:.0%}) |", end="")
    print(flush=True)


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=0, help="job threads when busy (0: the shipped concurrency)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    settings = load_settings()
    jobs = args.jobs or settings.concurrency
    settings = replace(settings, pool="threads", concurrency=jobs, language="en")
    runtime = build_runtime(settings)
    tally = Tally()
    instrumented(runtime, tally)
    clips = librispeech()
    transcribe_all(runtime, clips, jobs)  # warm-up, untimed
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load {_load()}")
    print(f"model {settings.model}, beam {settings.beam_size}, {settings.cpu_threads} threads, {len(clips)} clips")
    print("calls (share of wall time):")
    print("| mode | wall s | xRT | WER % | encode | generate | align | packed windows | clips alone |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for number in range(1, args.rounds + 1):
        for label, threads in ((f"{jobs} jobs at once", jobs), ("one at a time", 1)):
            tally.seconds.clear()
            tally.calls.clear()
            wall, texts = transcribe_all(runtime, clips, threads)
            report(f"round {number}: {label}", wall, texts, clips, tally)
    print(f"load at the end {_load()}")


if __name__ == "__main__":
    main()
