"""``farm bench``: measure xRT and WER of farm shapes on this machine (see farm.planning.benchmark)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from farm.commands.errors import friendly_errors
from farm.config import get_settings

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _csv(kind: type) -> Callable[[click.Context, click.Parameter, str], list[Any]]:
    def parse(_ctx: click.Context, _param: click.Parameter, value: str) -> list[Any]:
        if kind is bool:
            return [part.strip().lower() in ("1", "true", "yes") for part in value.split(",")]
        try:
            return [kind(part.strip()) for part in value.split(",") if part.strip()]
        except ValueError:
            raise click.BadParameter(f"{value!r}: expected comma-separated {kind.__name__} values") from None

    return parse


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--engine", default="ctranslate2", callback=_csv(str), help="comma-separated: ctranslate2,transformers")
@click.option("--model", default="tiny.en", callback=_csv(str))
@click.option(
    "--devices", default="auto", callback=_csv(str), help="auto, cpu or GPU indexes (0,1 is ONE value: use ';')"
)
@click.option("--compute-type", default="default", callback=_csv(str))
@click.option("--beam-size", default="5", callback=_csv(int))
@click.option("--batch-size", default="1", callback=_csv(int))
@click.option("--concurrency", default="4", callback=_csv(int))
@click.option("--cpu-workers", default="1", callback=_csv(int))
@click.option("--cpu-threads", default="0", callback=_csv(int))
@click.option("--pack", default="true", callback=_csv(bool))
@click.option(
    "--references", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="JSONL of path+reference"
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("farm-bench.json"), show_default=True
)
@friendly_errors
def bench(paths: tuple[Path, ...], references: Path | None, out: Path, **grid: list[Any]) -> None:
    """Measure xRT (and WER with --references) for every combination given; write a JSON report.

    Every option takes a comma-separated list; all combinations run, each as a real
    farm (private Redis + `farm worker`) on this machine.
    """
    from farm.planning import benchmark

    grid["devices"] = [d.replace(";", ",") for d in grid["devices"]]
    audio = benchmark.audio_set(list(paths), references)
    measurements = []
    for combo in benchmark.combos(grid):
        click.echo(f"measuring {combo}", err=True)
        measurement = benchmark.measure(combo, audio, get_settings())
        click.echo(f"  {describe(measurement)}", err=True)
        measurements.append(measurement)
    benchmark.write_report(out, benchmark.report(measurements, audio))
    click.echo(f"wrote {out}")


def describe(measurement: Any) -> str:
    """One line per measured shape, every figure with its unit."""
    wer = "WER not measured (no --references)" if measurement.wer is None else f"WER {measurement.wer:.2f} %"
    return f"{measurement.xrt:.1f} xRT (audio s per wall s), {wer}, peak RSS {measurement.peak_rss_mb:.0f} MiB"
