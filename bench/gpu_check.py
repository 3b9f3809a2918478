"""The GPU check: the engine's batched ceiling, then the whole farm, on synthetic weights.

1. In process: the transformers engine alone decodes batches of 1, 8, 16 and 32 windows
   of 30 s (``--batches``); windows/s at each.
2. The farm: a real ``redis-server``, ``farm worker`` on the device (threads pool, no
   packing: each job is one 30 s window) and jobs submitted through ``farm.client``, at
   the concurrency/batch the auto-sizing picks and at fixed points (``--points``), with
   GPU memory and utilisation sampled by nvidia-smi during each run.

The model is a published Whisper shape with random weights (farm.inference.engines.
synthetic) decoding exactly ``--tokens`` tokens per window, so no weights are downloaded:
every figure is labelled "synthetic weights, N tokens/window". Jobs are WAV files (the
farm's plain-WAV reader; no PyAV needed). Writes a JSON report (``--out``; it also reads
as a `farm bench` report for ``farm capacity --bench``) and prints a table. See docs/gpu.md.

    python bench/gpu_check.py --shape large-v3 --out gpu-check.json      # a GPU, ~5 min
    python bench/gpu_check.py --shape tiny --tokens 10 --batches 1,2 --points auto,c2b2 --jobs 2 --min-seconds 0  # CI
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing it (the GPU host)

from farm.client import Client  # noqa: E402
from farm.config import Settings, load_settings  # noqa: E402
from farm.inference.engines import synthetic  # noqa: E402
from farm.inference.signal import SAMPLE_RATE  # noqa: E402
from farm.serve.redis_server import RedisServer, start_redis  # noqa: E402

WINDOW_S = 30.0
JOB_OPTIONS = {"language": "en", "beam_size": 1, "temperature": 0.0}
PREPARED_TOKENIZER = ROOT / "bench" / ".gpu" / "tokenizer"  # bench/prepare_gpu_wheels.sh puts it there
SIZING = re.compile(r"sizing \S+: concurrency (\d+), batch_size (\d+)")


@dataclass(frozen=True)
class Point:
    """A farm shape: jobs held per worker and windows per engine call (0: automatic)."""

    concurrency: int
    batch_size: int

    @property
    def name(self) -> str:
        return "auto" if not (self.concurrency or self.batch_size) else f"c{self.concurrency}b{self.batch_size}"

    @classmethod
    def parse(cls, text: str) -> Point:
        if text == "auto":
            return cls(0, 0)
        found = re.fullmatch(r"c(\d+)b(\d+)", text)
        if not found:
            raise argparse.ArgumentTypeError(f"point {text!r}: 'auto' or cNbM (N jobs, M windows per call)")
        return cls(int(found.group(1)), int(found.group(2)))


@dataclass(frozen=True)
class Ceiling:
    batch: int
    calls: int
    wall_s: float
    windows_per_s: float
    peak_memory_mb: float | None


@dataclass(frozen=True)
class FarmRun:
    point: str
    concurrency: int
    batch_size: int
    jobs: int
    wall_s: float
    windows_per_s: float
    vs_ceiling: float | None  # against the in-process figure at the same batch size
    gpu_util_mean: float | None
    gpu_memory_peak_mb: float | None


# --- the model ------------------------------------------------------------------------


def device_and_dtype(requested: str) -> tuple[str, str]:
    import torch

    device = "cuda" if requested == "auto" and torch.cuda.is_available() else requested
    device = "cpu" if device == "auto" else device
    return device, "float16" if device.startswith("cuda") else "float32"


def tokenizer_dir(given: Path | None, workdir: Path) -> Path:
    """Tokenizer files of a multilingual Whisper: given, prepared, or the packaged base converted."""
    if given is not None:
        return given
    if (PREPARED_TOKENIZER / "tokenizer.json").is_file():
        return PREPARED_TOKENIZER
    from farm.inference.weights.models import resolve_model

    return Path(resolve_model("base", "transformers", str(workdir / "models")))


# --- in process -----------------------------------------------------------------------


def windows(count: int, seed: int = 0) -> list[np.ndarray]:
    """Distinct 30 s windows of quiet noise (the weights are random: content is irrelevant)."""
    rng = np.random.default_rng(seed)
    return [(0.05 * rng.standard_normal(int(WINDOW_S * SAMPLE_RATE))).astype(np.float32) for _ in range(count)]


def ceiling(model_dir: Path, device: str, dtype: str, batches: list[int], min_s: float) -> list[Ceiling]:
    from farm.inference.engines.base import EngineConfig, TranscribeOptions
    from farm.inference.engines.transformers import TransformersEngine

    engine = TransformersEngine(EngineConfig(model=str(model_dir), device=device, compute_type=dtype))
    options = TranscribeOptions(language="en", beam_size=1, temperatures=(0.0,))
    audio = windows(max(batches))
    results = [_timed_batches(engine, audio[:batch], options, min_s) for batch in batches]
    del engine
    _free_device_memory()
    return results


def _timed_batches(engine: Any, batch: list[np.ndarray], options: Any, min_s: float) -> Ceiling:
    engine.transcribe(batch, options)  # warm-up: kernels chosen, caches allocated
    _reset_peak_memory()
    calls, started = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - started < min_s:
        engine.transcribe(batch, options)
        calls += 1
    wall = time.perf_counter() - started
    return Ceiling(len(batch), calls, wall, len(batch) * calls / wall, _peak_memory_mb())


def tokens_per_window(model_dir: Path, device: str, dtype: str) -> int:
    """Decoder steps for one window, counted on the model itself: checks the synthetic config.

    transformers returns only the complete timestamped segments, so the returned ids
    undercount; each generated token is one decoder call (the first also reads the prompt).
    """
    import torch
    from transformers import WhisperForConditionalGeneration

    from farm.inference.engines.features import log_mel

    model = WhisperForConditionalGeneration.from_pretrained(str(model_dir), dtype=getattr(torch, dtype)).to(device)
    calls: list[int] = []
    hook = model.model.decoder.register_forward_hook(lambda *_: calls.append(1))
    features = torch.from_numpy(log_mel(windows(1)[0], int(model.config.num_mel_bins))[None])
    with torch.inference_mode():
        model.generate(features.to(device, model.dtype), language="en", task="transcribe", return_timestamps=True)
    hook.remove()
    del model
    _free_device_memory()
    return len(calls)


def _reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def _free_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- the farm -------------------------------------------------------------------------


def write_jobs(directory: Path, count: int) -> list[Path]:
    """``count`` distinct 30 s mono 16-bit WAV files (identical ones would be decoded once)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, samples in enumerate(windows(count, seed=1)):
        path = directory / f"job-{index:04d}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
        paths.append(path)
    return paths


def worker_env(server: RedisServer, model_dir: Path, device: str, dtype: str, point: Point) -> dict[str, str]:
    on_gpu = device.startswith("cuda")
    return os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        "FARM_BROKER_URL": server.url, "FARM_RESULT_BACKEND": server.url,
        "FARM_ENGINE": "transformers", "FARM_MODEL": str(model_dir), "FARM_COMPUTE_TYPE": dtype,
        "FARM_DEVICES": "auto" if on_gpu else "cpu", "FARM_CPU_WORKERS": "1", "FARM_CPU_THREADS": "0",
        "FARM_POOL": "threads", "FARM_PACK": "false", "FARM_BEAM_SIZE": "1", "FARM_LOG_LEVEL": "INFO",
        "FARM_CONCURRENCY": str(point.concurrency), "FARM_BATCH_SIZE": str(point.batch_size),
        "FARM_FANOUT_ABOVE_S": "0",
    }  # fmt: skip


@contextmanager
def farm_worker(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "farm.cli", "worker"], env=env, stdout=log, stderr=log)
        try:
            yield worker
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def run_point(settings: Settings, env: dict[str, str], jobs: list[Path], log_path: Path, timeout: float) -> FarmRun:
    with farm_worker(env, log_path) as worker:
        client = Client(settings)
        try:
            client.submit(str(jobs[0]), **JOB_OPTIONS).result(timeout=timeout)  # model loaded, kernels warm
            sampler = GpuSampler()
            started = time.perf_counter()
            submitted = [client.submit(str(path), **JOB_OPTIONS) for path in jobs]
            for job in submitted:
                job.result(timeout=timeout)
            wall = time.perf_counter() - started
            sampler.stop()
        finally:
            client.close()
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited during the run; see {log_path}")
    concurrency, batch = picked(log_path)
    return FarmRun(
        "", concurrency, batch, len(jobs), wall, len(jobs) / wall, None, sampler.util_mean, sampler.memory_peak
    )


def picked(log_path: Path) -> tuple[int, int]:
    """What the supervisor gave the worker, from its start banner ("sizing gpu0: ...")."""
    found = SIZING.search(log_path.read_text(errors="replace"))
    if found is None:
        raise RuntimeError(f"no sizing line in the worker's log {log_path}")
    return int(found.group(1)), int(found.group(2))


class GpuSampler:
    """GPU utilisation and memory from nvidia-smi every 0.5 s (nothing without a GPU)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if shutil.which("nvidia-smi"):
            self._thread.start()

    def _run(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        while not self._done.wait(0.5):
            try:
                line = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout.splitlines()[0]
                util, memory = (float(part) for part in line.split(","))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                continue
            self.samples.append((util, memory))

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def util_mean(self) -> float | None:
        return sum(u for u, _ in self.samples) / len(self.samples) if self.samples else None

    @property
    def memory_peak(self) -> float | None:
        return max(m for _, m in self.samples) if self.samples else None


def farm_runs(
    args: argparse.Namespace, model_dir: Path, device: str, dtype: str, ceilings: list[Ceiling]
) -> list[FarmRun]:
    server = start_redis()
    settings = replace(load_settings(), broker_url=server.url, result_backend=server.url)
    runs = []
    try:
        for point in args.points:
            jobs = write_jobs(args.workdir / "jobs", args.jobs or _job_count(point, args.jobs_per_batch))
            env = worker_env(server, model_dir, device, dtype, point)
            run = run_point(settings, env, jobs, args.workdir / f"worker-{point.name}.log", args.job_timeout)
            runs.append(replace(run, point=point.name, vs_ceiling=_vs_ceiling(run, ceilings)))
            print(f"farm {point.name}: {run.windows_per_s:.2f} windows/s", file=sys.stderr)
    finally:
        server.stop()
    return runs


def _job_count(point: Point, per_batch: int) -> int:
    # enough for several full batches at the point's size (auto: sized for the largest)
    return max(per_batch * (point.batch_size or 32), 8)


def _vs_ceiling(run: FarmRun, ceilings: list[Ceiling]) -> float | None:
    same = [c for c in ceilings if c.batch == run.batch_size]
    return run.windows_per_s / same[0].windows_per_s if same else None


# --- report ---------------------------------------------------------------------------


def hardware(device: str) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    memory = torch.cuda.get_device_properties(0).total_memory / 2**30 if gpu else None
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "gpu": gpu,
            "gpu_memory_gb": memory, "device": device}  # fmt: skip


def versions() -> dict[str, str]:
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}


def checks(ceilings: list[Ceiling], runs: list[FarmRun]) -> dict[str, Any]:
    """The issue's targets, computed from this run (None where this run has no figure for it)."""
    rate = {c.batch: c.windows_per_s for c in ceilings}
    fixed = [r.windows_per_s for r in runs if r.point != "auto"]
    auto = next((r for r in runs if r.point == "auto"), None)
    return {
        "batch16_over_batch1": rate[16] / rate[1] if 16 in rate and 1 in rate else None,
        "farm_over_ceiling": [r.vs_ceiling for r in runs],
        "auto_over_best_fixed": auto.windows_per_s / max(fixed) if auto and fixed else None,
    }


def report(args: argparse.Namespace, made: synthetic.Synthetic, device: str, **parts: Any) -> dict[str, Any]:
    label = synthetic.label(made.tokens_per_window)
    ceilings, runs = parts["ceilings"], parts["runs"]
    hw = hardware(device)
    return {
        "label": label, "date": datetime.now(UTC).strftime("%Y-%m-%d"), "shape": made.shape,
        "parameters": made.parameters, "dtype": made.dtype, "tokens_per_window": made.tokens_per_window,
        "tokens_checked": parts["tokens_checked"], "hardware": hw, "versions": versions(),
        "in_process": [asdict(c) for c in ceilings], "farm": [asdict(r) for r in runs],
        "checks": checks(ceilings, runs),
        # what `farm capacity --bench` reads: one xRT per measurement (a window is 30 s of audio)
        "results": [
            {"name": f"in-process b{c.batch}", "model": made.shape, "device": device, "xrt": c.windows_per_s * WINDOW_S,
             "weights": label} for c in ceilings
        ] + [
            {"name": f"farm {r.point} (c{r.concurrency}b{r.batch_size})", "model": made.shape, "device": device,
             "xrt": r.windows_per_s * WINDOW_S, "weights": label} for r in runs
        ],
    }  # fmt: skip


def table(content: dict[str, Any]) -> str:
    hw = content["hardware"]
    lines = [
        f"{content['shape']} shape, {content['dtype']}, {content['label']}, on {hw['gpu'] or hw['cpu']} "
        f"({content['date']}; {content['tokens_checked']} tokens decoded in the check window)",
        "",
        f"{'run':<26} {'batch':>5} {'windows/s':>10} {'xRT':>8} {'vs ceiling':>10} {'GPU util':>9} {'GPU MiB':>9}",
    ]
    for c in content["in_process"]:
        memory = _number(c["peak_memory_mb"], "{:.0f}")
        xrt = c["windows_per_s"] * WINDOW_S
        lines.append(
            f"{'in process':<26} {c['batch']:>5} {c['windows_per_s']:>10.2f} {xrt:>8.1f} {'':>10} {'':>9} {memory:>9}"
        )
    for r in content["farm"]:
        name = f"farm {r['point']} (c{r['concurrency']})"
        vs = _number(r["vs_ceiling"], "{:.2f}x")
        util, memory = _number(r["gpu_util_mean"], "{:.0f}%"), _number(r["gpu_memory_peak_mb"], "{:.0f}")
        xrt = r["windows_per_s"] * WINDOW_S
        lines.append(
            f"{name:<26} {r['batch_size']:>5} {r['windows_per_s']:>10.2f} {xrt:>8.1f} {vs:>10} {util:>9} {memory:>9}"
        )
    return "\n".join(lines) + "\n"


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


# --- main -----------------------------------------------------------------------------


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(synthetic.SHAPES), default="large-v3")
    parser.add_argument("--tokens", type=int, default=synthetic.DEFAULT_TOKENS_PER_WINDOW, help="tokens per window")
    parser.add_argument("--batches", default="1,8,16,32", help="in-process batch sizes")
    parser.add_argument("--points", default="auto,c16b8,c32b16", help="farm points: auto or cNbM, comma-separated")
    parser.add_argument("--jobs-per-batch", type=int, default=4, help="jobs per farm run, in full batches")
    parser.add_argument("--jobs", type=int, default=0, help="jobs per farm run (0: --jobs-per-batch full batches)")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="least time timed per in-process batch")
    parser.add_argument("--job-timeout", type=float, default=600.0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--tokenizer", type=Path, default=None, help="a multilingual Whisper tokenizer directory")
    parser.add_argument("--workdir", type=Path, default=None, help="model, jobs and worker logs (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=Path("gpu-check.json"))
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",")]
    args.points = [Point.parse(p) for p in args.points.split(",")]
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = arguments(argv)
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    device, dtype = device_and_dtype(args.device)
    model_dir = args.workdir / f"model-{args.shape}"
    made = synthetic.build(
        args.shape, tokenizer_dir(args.tokenizer, args.workdir), model_dir, args.tokens, dtype, device
    )
    print(f"built {made.shape} ({made.parameters:,} parameters, {made.label}) in {model_dir}", file=sys.stderr)
    checked = tokens_per_window(model_dir, device, dtype)
    ceilings = ceiling(model_dir, device, dtype, args.batches, args.min_seconds)
    runs = farm_runs(args, model_dir, device, dtype, ceilings)
    content = report(args, made, device, ceilings=ceilings, runs=runs, tokens_checked=checked)
    args.out.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    print(table(content), end="")
    return content


if __name__ == "__main__":
    main()
