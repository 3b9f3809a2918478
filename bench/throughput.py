"""Throughput of the farm's shipped defaults against faster-whisper, in interleaved rounds.

Same audio, model, beam and compute type for everyone (model, beam_size and
compute_type read from settings.toml, as the farm reads them), language ``en``:

  fw-seq      faster-whisper ``WhisperModel.transcribe``, one file after another, in
              process, with every core (what a single-process server does);
  fw-batched  faster-whisper ``BatchedInferencePipeline``, batch 8, every core;
  farm        whisperfarm end to end with the shipped settings (client -> private
              Redis -> ``farm worker``): every file submitted at once;
  farm-1      the same farm, one short clip at a time (the next submitted when the last
              returned: one user, an idle farm);
  naive       (``--naive``) transformers fp32, batch 1, sequential.

Each measures the short clips (50 LibriSpeech utterances) and the long-form files (two
recordings of 4 and 6.5 min) as separate rows. ``--rounds`` rounds run the
configurations in rotated order (round r starts at configuration r), so drift on a
shared machine lands on all of them; every round is printed with the machine's load,
then the median and spread (min-max) of every ratio. A benchmark, not a test.

    .venv/bin/python bench/throughput.py [--rounds 3] [--naive] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from corpus import Clip, librispeech, longform, wer

from farm.client import Client
from farm.config import Settings, load_settings
from farm.planning.benchmark import Combo, private_farm
from farm.serve.memory import PeakMemory

ROOT = Path(__file__).resolve().parents[1]
THREADS = os.cpu_count() or 2
SETS = ("short", "long")


@dataclass(frozen=True)
class Row:
    config: str
    set: str
    audio_s: float
    wall_s: float
    wer: float | None
    peak_rss_mb: float

    @property
    def xrt(self) -> float:
        return self.audio_s / self.wall_s


@dataclass
class Round:
    number: int
    order: list[str]
    load_before: str
    load_after: str = ""
    rows: list[Row] = field(default_factory=list)
    process_peaks_mb: dict[str, list[float]] = field(default_factory=dict)  # farm phase -> per-process peak


LIMIT: list[int] = []  # --clips: only the first N of each set (a quick look, not a figure)


def clip_sets() -> dict[str, list[Clip]]:
    sets = {"short": librispeech(), "long": longform()}
    return {name: clips[: LIMIT[0]] for name, clips in sets.items()} if LIMIT else sets


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


# --- in-process peers, each in a child process of its own ---------------------------


def _fw_model(settings: Settings) -> object:
    from faster_whisper import WhisperModel

    from farm.serve.runtime import engine_config

    config = engine_config(settings)  # the model and compute type a farm worker loads
    return WhisperModel(config.model, compute_type=config.compute_type, cpu_threads=THREADS)


def fw_sequential(settings: Settings) -> Callable[[Clip], str]:
    model = _fw_model(settings)

    def one(clip: Clip) -> str:
        segments, _ = model.transcribe(str(clip.path), beam_size=settings.beam_size, language="en")  # type: ignore[attr-defined]
        return "".join(s.text for s in segments)

    return one


def fw_batched(settings: Settings) -> Callable[[Clip], str]:
    from faster_whisper import BatchedInferencePipeline

    pipeline = BatchedInferencePipeline(_fw_model(settings))

    def one(clip: Clip) -> str:
        segments, _ = pipeline.transcribe(str(clip.path), beam_size=settings.beam_size, language="en", batch_size=8)
        return "".join(s.text for s in segments)

    return one


def naive(settings: Settings) -> Callable[[Clip], str]:
    from farm.inference import audio
    from farm.inference.engines import load_engine
    from farm.inference.engines.base import EngineConfig, TranscribeOptions
    from farm.inference.weights.models import resolve_model

    model = resolve_model(settings.model, "transformers", str(Path(settings.models_dir).expanduser()))
    engine = load_engine("transformers", EngineConfig(model=model, cpu_threads=THREADS))
    options = TranscribeOptions(language="en", beam_size=settings.beam_size)
    return lambda clip: engine.transcribe([audio.decode(clip.path)], options)[0].text


PEERS = {"fw-seq": fw_sequential, "fw-batched": fw_batched, "naive": naive}


def child_main(which: str) -> None:
    one = PEERS[which](load_settings())
    sets = clip_sets()
    one(sets["short"][0])  # warm-up, untimed
    report = {}
    for name, clips in sets.items():
        started = time.perf_counter()
        texts = [one(clip) for clip in clips]
        report[name] = {"wall_s": time.perf_counter() - started, "texts": texts}
    json.dump(report, sys.stdout)


def run_peer(which: str) -> list[Row]:
    argv = [sys.executable, __file__, "--child", which, *(["--clips", str(LIMIT[0])] if LIMIT else [])]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT)
    peak = PeakMemory(process.pid)
    out, _ = process.communicate()
    peak.stop()
    if process.returncode:
        raise RuntimeError(f"configuration {which} failed")
    report = json.loads(out)
    return [_row(which, name, report[name]["wall_s"], report[name]["texts"], peak.peak_rss_mb) for name in SETS]


def _row(config: str, name: str, wall_s: float, texts: list[str], peak_mb: float) -> Row:
    clips = clip_sets()[name]
    score = wer([c.reference for c in clips], texts) if name == "short" else None
    return Row(config, name, sum(c.duration for c in clips), wall_s, score, peak_mb)


# --- the farm with its shipped settings --------------------------------------------


def shipped(settings: Settings) -> Combo:
    """The farm as settings.toml ships it (this machine has no GPU: devices = cpu)."""
    return Combo(
        engine=settings.engine,
        model=settings.model,
        devices="cpu",
        compute_type=settings.compute_type,
        beam_size=settings.beam_size,
        batch_size=settings.batch_size,
        concurrency=settings.concurrency,
        cpu_workers=settings.cpu_workers,
        cpu_threads=settings.cpu_threads,
        pool=settings.pool,
        pack=settings.pack,
    )


class ProcessPeaks:
    """Peak RSS of each worker process (the supervisor's children), sampled in the background."""

    def __init__(self, supervisor: int) -> None:
        import psutil

        self._supervisor = psutil.Process(supervisor)
        self.peaks: dict[int, int] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._done.wait(0.2):
            try:
                self._once()
            except psutil.Error:
                continue

    def _once(self) -> None:
        for child in self._supervisor.children(recursive=True):
            self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), child.memory_info().rss)

    def snapshot_mb(self) -> list[float]:
        self._once()
        return [round(self.peaks[pid] / 2**20, 1) for pid in sorted(self.peaks)]

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def run_farm(settings: Settings, round_: Round) -> list[Row]:
    combo = shipped(settings)
    options = {"beam_size": combo.beam_size, "language": "en"}
    rows = []
    with private_farm(combo, settings) as (client, worker_pid):
        first = clip_sets()["short"][0].path
        _results(client.submit_many([first] * (combo.processes * combo.concurrency), **options))
        peaks = ProcessPeaks(worker_pid)
        round_.process_peaks_mb["warm"] = peaks.snapshot_mb()
        # The two 50-clip phases first, so the growth of each process's peak per 50 jobs shows.
        phases = (("farm", "short", _burst), ("farm-1", "short", _one_at_a_time), ("farm", "long", _burst))
        for config, name, submit in phases:
            with _peak(worker_pid) as peak:
                started = time.perf_counter()
                texts = submit(client, clip_sets()[name], options)
                wall = time.perf_counter() - started
            rows.append(_row(config, name, wall, texts, peak.peak_rss_mb))
            round_.process_peaks_mb[f"{config} {name}"] = peaks.snapshot_mb()
        peaks.stop()
    return rows


@contextmanager
def _peak(pid: int) -> Iterator[PeakMemory]:
    peak = PeakMemory(pid)
    try:
        yield peak
    finally:
        peak.stop()


def _burst(client: Client, clips: list[Clip], options: dict[str, object]) -> list[str]:
    return _results(client.submit_many([c.path for c in clips], **options))


def _one_at_a_time(client: Client, clips: list[Clip], options: dict[str, object]) -> list[str]:
    return [str(client.submit(c.path, **options).result(timeout=3600)["text"]) for c in clips]


def _results(jobs: list[object]) -> list[str]:
    return [str(job.result(timeout=3600)["text"]) for job in jobs]  # type: ignore[attr-defined]


# --- rounds and ratios ------------------------------------------------------------------


def run_round(number: int, configs: list[str], settings: Settings) -> Round:
    shift = number % len(configs)
    order = configs[shift:] + configs[:shift]
    current = Round(number + 1, order, load())
    for config in order:
        rows = run_farm(settings, current) if config == "farm" else run_peer(config)
        current.rows.extend(rows)
        print(f"round {number + 1}: {config} done ({load()})", file=sys.stderr, flush=True)
    current.load_after = load()
    return current


RATIOS = (
    ("farm", "fw-seq"),
    ("farm", "fw-batched"),
    ("farm-1", "fw-seq"),
    ("farm-1", "fw-batched"),
    ("farm", "naive"),
)


def ratios(round_: Round) -> dict[str, float]:
    xrt = {(r.config, r.set): r.xrt for r in round_.rows}
    found = {}
    for top, base in RATIOS:
        for name in SETS:
            if (top, name) in xrt and (base, name) in xrt:
                found[f"{top} / {base}, {name}"] = xrt[(top, name)] / xrt[(base, name)]
    return found


def round_table(round_: Round) -> str:
    lines = [
        f"### Round {round_.number} (order: {', '.join(round_.order)})",
        f"load before: {round_.load_before}",
        f"load after:  {round_.load_after}",
        "",
        "| config | set | audio s | wall s | xRT | WER % | peak RSS MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in round_.rows:
        score = "" if row.wer is None else f"{row.wer:.2f}"
        lines.append(
            f"| {row.config} | {row.set} | {row.audio_s:.0f} | {row.wall_s:.1f} | {row.xrt:.1f} | {score} | "
            f"{row.peak_rss_mb:.0f} |"
        )
    if round_.process_peaks_mb:
        lines.append("")
        lines.append(
            "farm worker processes, peak RSS MiB after each phase: "
            + "; ".join(f"{phase} {peaks}" for phase, peaks in round_.process_peaks_mb.items())
        )
    return "\n".join(lines)


def summary(rounds: list[Round]) -> str:
    per_round = [ratios(r) for r in rounds]
    lines = [
        "| ratio (xRT / xRT) | " + " | ".join(f"round {r.number}" for r in rounds) + " | median | spread |",
        "| --- | " + " | ".join("---:" for _ in rounds) + " | ---: | ---: |",
    ]
    for key in per_round[0]:
        values = [found[key] for found in per_round if key in found]
        cells = " | ".join(f"{v:.2f}" for v in values)
        spread = f"{min(values):.2f}-{max(values):.2f}"
        lines.append(f"| {key} | {cells} | **{statistics.median(values):.2f}** | {spread} |")
    return "\n".join(lines)


def header(settings: Settings) -> str:
    combo = shipped(settings)
    audio = {name: sum(c.duration for c in clips) for name, clips in clip_sets().items()}
    return "\n".join(
        [
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, {os.cpu_count()} cores",
            f"model {settings.model}, compute_type {settings.compute_type}, beam {settings.beam_size}, language en;"
            f" short: {len(clip_sets()['short'])} clips, {audio['short']:.0f} s; long: "
            f"{len(clip_sets()['long'])} files, {audio['long']:.0f} s",
            f"farm (shipped settings): {combo.processes} processes x {combo.cpu_threads} threads, "
            f"concurrency {combo.concurrency}, pool {combo.pool}, batch {combo.batch_size}, pack {combo.pack}; "
            f"peers: {THREADS} threads in one process",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="fw-seq,fw-batched,farm", help="configurations, comma-separated")
    parser.add_argument("--naive", action="store_true", help="add the transformers fp32 configuration")
    parser.add_argument("--json", type=Path, help="also write every round here")
    parser.add_argument("--clips", type=int, help="only the first N files of each set (a quick look)")
    parser.add_argument("--child", choices=sorted(PEERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    LIMIT.extend([args.clips] if args.clips else [])
    if args.child:
        child_main(args.child)
        return
    settings = load_settings()
    configs = args.only.split(",") + (["naive"] if args.naive else [])
    print(header(settings), flush=True)
    rounds = []
    for number in range(args.rounds):
        rounds.append(run_round(number, configs, settings))
        print("\n" + round_table(rounds[-1]), flush=True)
    print("\n" + summary(rounds))
    if args.json:
        payload = [asdict(r) | {"ratios": ratios(r)} for r in rounds]
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
