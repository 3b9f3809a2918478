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
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import corpus
from corpus import EVAL, Clip, librispeech

from farm.client import Client
from farm.config import load_settings
from farm.models import resolve_model
from farm.redis_server import start_redis

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Run:
    name: str
    hypotheses: list[str]
    wall_s: float


def wer(clips: list[Clip], hypotheses: list[str]) -> float:
    return corpus.wer([c.reference for c in clips], hypotheses)


def run_direct(clips: list[Clip], beam_size: int, threads: int) -> Run:
    from faster_whisper import WhisperModel

    model = WhisperModel(resolve_model("tiny.en", "ctranslate2", "/tmp"), compute_type="int8", cpu_threads=threads)
    started = time.perf_counter()
    texts = []
    for clip in clips:
        segments, _ = model.transcribe(str(clip.path), beam_size=beam_size, language="en")
        texts.append("".join(s.text for s in segments))
    return Run("faster-whisper direct (in process)", texts, time.perf_counter() - started)


def run_farm(clips: list[Clip], beam_size: int, threads: int) -> Run:
    server = start_redis()
    env = os.environ | {
        "FARM_BROKER_URL": server.url,
        "FARM_RESULT_BACKEND": server.url,
        "FARM_DEVICES": "cpu",
        "FARM_CPU_THREADS": str(threads),
        "FARM_COMPUTE_TYPE": "int8",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "farm.cli", "worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    client = Client(replace(load_settings(), broker_url=server.url, result_backend=server.url))
    try:
        warm_up(client, clips[0])
        started = time.perf_counter()
        jobs = client.submit_many([c.path for c in clips], beam_size=beam_size, language="en")
        texts = [job.result(timeout=600)["text"] for job in jobs]
        return Run("whisperfarm (client -> Redis -> worker)", texts, time.perf_counter() - started)
    finally:
        client.close()
        worker.terminate()
        worker.wait(timeout=60)
        server.stop()


def warm_up(client: Client, clip: Clip) -> None:
    # The worker loads its model at start; time the steady state, as for the direct run.
    deadline = time.monotonic() + 120
    while not client.workers(timeout=0.5):
        if time.monotonic() > deadline:
            raise RuntimeError("worker did not start")
    client.submit(clip.path).result(timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
        print(f"| {run.name} | {wer(clips, run.hypotheses):.2f} | {run.wall_s:.1f} | {audio_s / run.wall_s:.1f} |")


if __name__ == "__main__":
    main()
