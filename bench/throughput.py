"""Throughput of the farm against a naive service and faster-whisper, in one run.

Same audio (the 50 LibriSpeech clips plus both long-form files from ../shared/eval),
same model (tiny.en), same decoding options; every configuration runs in a process of
its own, one after the other (two engines in one process fight over threads):

  (a) naive: transformers engine, batch 1, one request at a time (a TorchServe-style
      deployment);
  (b) faster-whisper ``WhisperModel.transcribe`` in process, sequential (the peer);
  (c) faster-whisper ``BatchedInferencePipeline`` in process (the peer's best);
  (d) whisperfarm end to end: client -> Redis -> worker(s) -> result.

Prints a markdown table with xRT (audio seconds per wall second), WER on the 50
clips, and the ratios the targets are stated in. A benchmark, not a test.

    .venv/bin/python bench/throughput.py [--beam-size 5] [--only a,b,c,d]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from corpus import Clip, librispeech, longform, wer

from farm.planning.benchmark import AudioSet, Combo, measure
from farm.serve.memory import PeakMemory

ROOT = Path(__file__).resolve().parents[1]
THREADS = os.cpu_count() or 2


@dataclass(frozen=True)
class Outcome:
    name: str
    audio_s: float
    wall_s: float
    texts: list[str]
    peak_rss_mb: float

    @property
    def xrt(self) -> float:
        return self.audio_s / self.wall_s


def corpus_clips() -> list[Clip]:
    return librispeech() + longform()


# --- the four configurations, each run in its own process -------------------------


def run_naive(clips: list[Clip], beam: int) -> list[str]:
    from farm.inference import audio
    from farm.inference.engines import load_engine
    from farm.inference.engines.base import EngineConfig, TranscribeOptions
    from farm.inference.weights.models import resolve_model

    model = resolve_model("tiny.en", "transformers", str(Path.home() / ".cache" / "whisperfarm" / "models"))
    engine = load_engine("transformers", EngineConfig(model=model, cpu_threads=THREADS))
    options = TranscribeOptions(language="en", beam_size=beam)
    engine.transcribe([audio.decode(clips[0].path)], options)  # warm-up, untimed
    return _timed(clips, lambda c: engine.transcribe([audio.decode(c.path)], options)[0].text)


def run_faster_whisper(clips: list[Clip], beam: int) -> list[str]:
    from faster_whisper import WhisperModel

    from farm.inference.weights.models import resolve_model

    model = WhisperModel(resolve_model("tiny.en", "ctranslate2", "/tmp"), compute_type="int8", cpu_threads=THREADS)

    def one(clip: Clip) -> str:
        segments, _ = model.transcribe(str(clip.path), beam_size=beam, language="en")
        return "".join(s.text for s in segments)

    one(clips[0])
    return _timed(clips, one)


def run_batched_pipeline(clips: list[Clip], beam: int) -> list[str]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from farm.inference.weights.models import resolve_model

    model = WhisperModel(resolve_model("tiny.en", "ctranslate2", "/tmp"), compute_type="int8", cpu_threads=THREADS)
    pipeline = BatchedInferencePipeline(model)

    def one(clip: Clip) -> str:
        segments, _ = pipeline.transcribe(str(clip.path), beam_size=beam, language="en", batch_size=8)
        return "".join(s.text for s in segments)

    one(clips[0])
    return _timed(clips, one)


_TIMING: dict[str, float] = {}


def _timed(clips: list[Clip], one: Callable[[Clip], str]) -> list[str]:
    started = time.perf_counter()
    texts = [one(c) for c in clips]
    _TIMING["wall_s"] = time.perf_counter() - started
    return texts


CHILDREN = {"a": run_naive, "b": run_faster_whisper, "c": run_batched_pipeline}
NAMES = {
    "a": "(a) naive: transformers fp32, batch 1, sequential",
    "b": "(b) faster-whisper WhisperModel, int8, sequential",
    "c": "(c) faster-whisper BatchedInferencePipeline, int8, batch 8",
    "d": "(d) whisperfarm end to end",
}


def child_main(which: str, beam: int) -> None:
    texts = CHILDREN[which](corpus_clips(), beam)
    json.dump({"wall_s": _TIMING["wall_s"], "texts": texts}, sys.stdout)


def run_child(which: str, beam: int) -> Outcome:
    argv = [sys.executable, __file__, "--child", which, "--beam-size", str(beam)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT)
    peak = PeakMemory(process.pid)
    out, _ = process.communicate()
    peak.stop()
    if process.returncode:
        raise RuntimeError(f"configuration {which} failed")
    report = json.loads(out)
    return Outcome(NAMES[which], _audio_s(), report["wall_s"], report["texts"], peak.peak_rss_mb)


# --- (d): the farm, end to end (farm.planning.benchmark starts a private Redis + workers) ------


def parse_shape(text: str, beam: int) -> Combo:
    """ "2x1x8" -> 2 CPU worker processes x 1 thread each, 8 jobs held per process."""
    workers, threads, concurrency = (int(x) for x in text.split("x"))
    return Combo(
        devices="cpu",
        compute_type="int8",
        beam_size=beam,
        concurrency=concurrency,
        cpu_workers=workers,
        cpu_threads=threads,
    )


def run_farm(combo: Combo) -> Outcome:
    from farm.config import load_settings

    clips = corpus_clips()
    audio = AudioSet([c.path for c in clips], [c.duration for c in clips], None)
    result = measure(combo, audio, load_settings(), options={"language": "en"})
    label = f"{combo.cpu_workers} proc x {combo.cpu_threads} thr, {combo.concurrency} jobs/proc"
    return Outcome(f"{NAMES['d']} ({label})", audio.seconds, result.wall_s, result.texts, result.peak_rss_mb)


# --- measuring ---------------------------------------------------------------------


def _audio_s() -> float:
    return sum(c.duration for c in corpus_clips())


def clip_wer(outcome: Outcome) -> float:
    clips = librispeech()
    return wer([c.reference for c in clips], outcome.texts[: len(clips)])


def table(outcomes: dict[str, Outcome]) -> str:
    lines = [
        "| run | wall s | xRT | WER % (50 clips) | peak RSS MiB | vs (a) | vs (b) | vs (c) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for outcome in outcomes.values():
        ratios = [_ratio(outcome, outcomes.get(k)) for k in "abc"]
        lines.append(
            f"| {outcome.name} | {outcome.wall_s:.1f} | {outcome.xrt:.1f} | {clip_wer(outcome):.2f} | "
            f"{outcome.peak_rss_mb:.0f} | " + " | ".join(ratios) + " |"
        )
    return "\n".join(lines)


def _ratio(outcome: Outcome, base: Outcome | None) -> str:
    return "" if base is None else f"{outcome.xrt / base.xrt:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--only", default="a,b,c,d")
    parser.add_argument("--farm", default="2x1x8", help="cpu_workers x cpu_threads x concurrency, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.beam_size)
        return
    outcomes: dict[str, Outcome] = {}
    for key in args.only.split(","):
        if key == "d":
            for n, spec in enumerate(args.farm.split(",")):
                outcomes[f"d{n}" if n else "d"] = run_farm(parse_shape(spec, args.beam_size))
        else:
            outcomes[key] = run_child(key, args.beam_size)
        print(f"done: {key}", file=sys.stderr)
    print(f"tiny.en, beam {args.beam_size}, language en, {len(corpus_clips())} files ({_audio_s():.0f} s of audio),")
    print(f"{platform.machine()}, {os.cpu_count()} cores, {THREADS} threads per in-process engine")
    print(table(outcomes))
    if args.json:
        payload = {k: asdict(v) | {"xrt": v.xrt, "wer": clip_wer(v)} for k, v in outcomes.items()}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
