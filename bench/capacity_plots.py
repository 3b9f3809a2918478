"""The plots of docs/capacity.md, drawn from farm.planning.capacity's own formulas.

    .venv/bin/python bench/capacity_plots.py [--out docs/img]

1. GPUs needed vs daily audio hours, per built-in GPU type (large-v3, peak x2,
   p95 wait <= 60 s, 5-minute jobs, utilisation <= 0.8).
2. p95 queue wait (in service times) vs utilisation for fleets of 1 to 32 GPUs (M/M/c).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI

import matplotlib.pyplot as plt

from farm.planning.capacity import Demand, builtin_throughput, plan_capacity, wait_quantile
from farm.planning.capacity_data import GPU_TYPES

ROOT = Path(__file__).resolve().parents[1]
MODEL = "large-v3"
AUDIO_HOURS = [50 * 2**k for k in range(0, 10)]  # 50 .. 25,600 audio hours a day
FLEETS = (1, 2, 4, 8, 16, 32)


def gpus_vs_audio_hours(out: Path) -> Path:
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for gpu in GPU_TYPES:
        throughput = builtin_throughput(gpu, MODEL)
        gpus = [plan_capacity(Demand(hours, 2.0, 60.0), throughput).gpus for hours in AUDIO_HOURS]
        mark = " (estimate)" if throughput.estimate else ""
        axes.step(AUDIO_HOURS, gpus, where="post", label=f"{gpu}: {throughput.xrt:g}x RT{mark}")
    axes.set(
        xscale="log", yscale="log", xlabel="audio hours per day", ylabel="GPUs",
        title=f"GPUs needed: {MODEL}, peak x2, p95 wait <= 60 s, 5-min jobs, util <= 0.8",
    )  # fmt: skip
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return _save(figure, out / "capacity_gpus_vs_audio_hours.png")


def wait_vs_utilisation(out: Path) -> Path:
    figure, axes = plt.subplots(figsize=(7, 4.5))
    utilisation = [u / 100 for u in range(5, 100)]
    for servers in FLEETS:
        waits = [wait_quantile(servers, rho * servers, 1.0) for rho in utilisation]
        axes.plot(utilisation, waits, label=f"{servers} GPU{'s' if servers > 1 else ''}")
    axes.set(
        ylim=(0, 10), xlabel="utilisation (offered load / GPUs)", ylabel="p95 queue wait / service time",
        title="p95 wait vs utilisation (M/M/c, Erlang C)",
    )  # fmt: skip
    axes.axvline(0.8, color="grey", linestyle="--", linewidth=1)
    axes.text(0.805, 9.3, "default max 0.8", color="grey")
    axes.grid(True, alpha=0.3)
    axes.legend(title="fleet")
    return _save(figure, out / "capacity_p95_wait_vs_utilisation.png")


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (gpus_vs_audio_hours(args.out), wait_vs_utilisation(args.out)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
