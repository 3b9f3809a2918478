"""Throughput of the farm against batch size and concurrency: a farm-bench report and a PNG.

    .venv/bin/python bench/sweep.py [--batch 1,2,4,8] [--concurrency 1,2,4,8] [--threads 2]
    .venv/bin/python bench/sweep.py --plot farm-bench.json   # only draw an existing report

Every point is a fresh farm (private Redis, one `farm worker` process with --threads CPU
threads, the threads pool) transcribing the 50 LibriSpeech test-other clips of
../shared/eval with tiny.en, beam 5, language en, timed from the first submit to the last
result after a warm-up. Packing is on for the grid; one more series runs with packing off
at the highest concurrency, so the plot shows what packing adds over batching alone.
The report has `farm bench`'s format (the capacity planner reads it); the PNG goes next
to it (docs/img by default). On a GPU, run it with --devices 0 and larger batches.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI

import matplotlib.pyplot as plt
from corpus import ROOT, librispeech

from farm.config import load_settings
from farm.planning.benchmark import AudioSet, Combo, Measurement, measure, report, write_report


def grid(batches: list[int], concurrencies: list[int], base: Combo) -> list[Combo]:
    packed = [replace(base, batch_size=b, concurrency=c) for c in concurrencies for b in batches]
    unpacked = [replace(base, batch_size=b, concurrency=max(concurrencies), pack=False) for b in batches]
    return packed + unpacked


def run(combos: list[Combo]) -> tuple[list[Measurement], AudioSet]:
    clips = librispeech()
    audio = AudioSet([c.path for c in clips], [c.duration for c in clips], [c.reference for c in clips])
    measurements = []
    for combo in combos:
        measurement = measure(combo, audio, load_settings(), options={"language": "en"})
        print(f"{measurement.name:<55} {measurement.xrt:6.1f} xRT  WER {measurement.wer:5.2f}", flush=True)
        measurements.append(measurement)
    return measurements, audio


def plot(results: list[dict[str, Any]], title: str, out: Path) -> Path:
    """xRT against batch size (a line per concurrency) and against concurrency (a line per batch size)."""
    figure, (by_batch, by_concurrency) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    packed = [r for r in results if r.get("pack", True)]
    for concurrency in sorted({r["concurrency"] for r in packed}):
        _line(
            by_batch,
            [r for r in packed if r["concurrency"] == concurrency],
            "batch_size",
            f"{concurrency} job{'s' if concurrency > 1 else ''}",
        )
    unpacked = [r for r in results if not r.get("pack", True)]
    if unpacked:
        label = f"{unpacked[0]['concurrency']} jobs, packing off"
        _line(by_batch, unpacked, "batch_size", label, linestyle="--", color="black")
    for batch in sorted({r["batch_size"] for r in packed}):
        _line(by_concurrency, [r for r in packed if r["batch_size"] == batch], "concurrency", f"batch {batch}")
    by_batch.set(xlabel="batch_size (windows per engine call)", ylabel="throughput, x real time", xscale="log")
    by_concurrency.set(xlabel="concurrency (jobs held at once)", xscale="log")
    for axes, legend in ((by_batch, "concurrency"), (by_concurrency, "packing on")):
        axes.set_xticks(sorted({p for r in results for p in (r["batch_size"], r["concurrency"])}))
        axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes.grid(True, alpha=0.3)
        axes.legend(title=legend)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _line(axes: Any, rows: list[dict[str, Any]], key: str, label: str, **style: Any) -> None:
    rows = sorted(rows, key=lambda r: r[key])
    axes.plot([r[key] for r in rows], [r["xrt"] for r in rows], marker="o", label=label, **style)


def _title(content: dict[str, Any]) -> str:
    first = content["results"][0]
    hardware = content["hardware"]
    where = hardware.get("gpu") or f"{hardware.get('cores', '?')} CPU cores"
    return (
        f"{first['model']} {first['engine']} {first['compute_type']}, beam {first['beam_size']}, "
        f"{first.get('processes', '?')} process x {first.get('cpu_threads', '?')} threads, {where}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batch", default="1,2,4,8")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the one worker process")
    parser.add_argument("--devices", default="cpu")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "throughput-sweep.json")
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "img" / "throughput_batch_concurrency.png")
    parser.add_argument("--plot", type=Path, help="draw this farm-bench report instead of measuring")
    args = parser.parse_args()
    if args.plot is None:
        base = Combo(devices=args.devices, cpu_workers=1, cpu_threads=args.threads, compute_type="int8")
        combos = grid(_ints(args.batch), _ints(args.concurrency), base)
        write_report(args.report, report(*run(combos)))
    content = json.loads((args.plot or args.report).read_text())
    print(f"wrote {plot(content['results'], _title(content), args.png)}")


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    main()
