"""`farm capacity`: plan GPUs, worker pods and Redis for a daily load (see farm.planning.capacity)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from farm.commands.errors import friendly_errors


@click.command()
@click.option("--audio-hours", type=click.FloatRange(min=0, min_open=True), required=True, help="audio hours per day")
@click.option("--peak-ratio", type=click.FloatRange(min=1), default=2.0, show_default=True, help="peak hour / average")
@click.option(
    "--p95-wait", type=click.FloatRange(min=0), default=60.0, show_default=True, help="target p95 queue wait, s"
)
@click.option("--model", "model_name", default="large-v3", show_default=True)
@click.option(
    "--gpu", "gpus", multiple=True, help="A100 or H100: the GPUs with a published figure (repeatable; default: both)"
)
@click.option("--bench", "bench_report", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--job-minutes", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True)
@click.option("--max-utilisation", type=click.FloatRange(0, 1, min_open=True), default=0.8, show_default=True)
@click.option("--gpus-per-pod", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--price-per-gpu-hour", type=click.FloatRange(min=0), default=None, help="adds a cost line")
@click.option("--result-ttl-hours", type=click.FloatRange(min=0), default=24.0, show_default=True)
@click.option("--outage-minutes", type=click.FloatRange(min=0), default=60.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@friendly_errors
def capacity(
    audio_hours: float,
    peak_ratio: float,
    p95_wait: float,
    model_name: str,
    gpus: tuple[str, ...],
    bench_report: Path | None,
    job_minutes: float,
    max_utilisation: float,
    gpus_per_pod: int,
    price_per_gpu_hour: float | None,
    result_ttl_hours: float,
    outage_minutes: float,
    as_json: bool,
) -> None:
    """Plan GPUs, worker pods and Redis for a daily audio load (M/M/c, Erlang C)."""
    from farm.planning import capacity as planner
    from farm.planning.capacity_data import GPU_TYPES

    demand = planner.Demand(audio_hours, peak_ratio, p95_wait, job_minutes * 60, max_utilisation)
    fleet = planner.Fleet(gpus_per_pod, price_per_gpu_hour, result_ttl_hours, outage_minutes)
    if bench_report is not None:
        sources = [planner.bench_throughput(bench_report, model_name)]
    else:
        sources = [planner.builtin_throughput(gpu, model_name) for gpu in gpus or GPU_TYPES]
    plans = [planner.plan_capacity(demand, source, fleet) for source in sources]
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in plans], indent=2))
        return
    click.echo(planner.render(plans), nl=False)
