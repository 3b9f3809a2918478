"""The ``farm`` command: transcribe files, manage jobs, run workers, show settings."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from farm.bench_command import bench
from farm.broker import broker_reachable, redis_ssl_options
from farm.cli_errors import friendly_errors
from farm.client import Client, Job, _safe_url
from farm.config import Settings, get_settings
from farm.constants import OUTPUT_FORMATS
from farm.errors import BrokerUnavailableError, ConfigError, FarmError
from farm.formats import render
from farm.progress import follow


@click.group()
def main() -> None:
    """whisperfarm: speech to text on a farm of Whisper workers."""


@dataclass(frozen=True)
class Decoding:
    """What the decoding flags shared by `transcribe` and `submit` ask of every job."""

    options: dict[str, Any]
    queue: str | None


def decoding_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add the decoding flags to ``command``, which receives them as one ``decoding``."""

    @functools.wraps(command)
    def with_decoding(
        *args: Any, language: str | None, task: str | None, beam_size: int | None, words: bool, queue: str | None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        options = {"language": language, "task": task, "beam_size": beam_size, "word_timestamps": words or None}
        chosen = {key: value for key, value in options.items() if value is not None}
        command(*args, decoding=Decoding(chosen, queue), **kwargs)

    flags = [
        click.option("--language", help="ISO 639-1 code, or 'auto' to detect (default from settings)"),
        click.option("--task", type=click.Choice(["transcribe", "translate"])),
        click.option("--beam-size", type=int),
        click.option("--word-timestamps", "words", is_flag=True, help="add word-level timestamps"),
        click.option("--queue", help="send to this queue (e.g. farm.gpu0) instead of the shared one"),
    ]
    for flag in reversed(flags):
        with_decoding = flag(with_decoding)
    return with_decoding


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--format", "formats", multiple=True, type=click.Choice(OUTPUT_FORMATS), default=["txt"], show_default=True
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="write <name>.<format> files here")
@click.option("--timeout", type=float, default=None, help="give up after this many seconds")
@click.option("--output", help="s3://bucket/prefix (or a directory workers share): workers write <job id>.<format>")
@decoding_options
@friendly_errors
def transcribe(
    files: tuple[str, ...],
    formats: tuple[str, ...],
    out: Path | None,
    timeout: float | None,
    output: str | None,
    decoding: Decoding,
) -> None:
    """Transcribe FILES (paths or s3:// URIs) and print or write the results."""
    options = decoding.options | _delivery(output, formats)
    with ExitStack() as stack:
        client = Client(_reachable_farm(get_settings(), stack))
        jobs = [client.submit(f, queue=decoding.queue, **options) for f in files]
        follow(jobs, timeout)
        failures = _emit_outputs(jobs) if output and out is None else _emit(jobs, formats, out)
    if failures:
        sys.exit(1)


def _reachable_farm(settings: Settings, stack: ExitStack) -> Settings:
    reason = _why_not_served(settings)
    if reason is None:
        return settings
    if not settings.embedded_broker:
        raise BrokerUnavailableError(f"{reason} and embedded_broker is off; start `farm worker` or `farm up`")
    from farm.embedded import local_farm

    click.echo(f"{reason}; starting a private Redis and worker", err=True)
    return stack.enter_context(local_farm(settings)).settings


def _answering_broker() -> Settings:
    # Celery would retry a dead (or password-refusing) Redis for ~20 s, then raise a bare
    # RuntimeError: ask first, and fail at once with one line.
    settings = get_settings()
    if not broker_reachable(settings.broker_url, tls=redis_ssl_options(settings)):
        raise BrokerUnavailableError(f"cannot reach the broker at {_safe_url(settings.broker_url)}")
    return settings


def _why_not_served(settings: Settings) -> str | None:
    if not broker_reachable(settings.broker_url, tls=redis_ssl_options(settings)):
        return "no broker answered"
    probe = Client(settings)
    try:
        return None if probe.workers(timeout=1.0) else "no worker answered"
    finally:
        probe.close()


def _emit(jobs: list[Job], formats: tuple[str, ...], out: Path | None) -> int:
    failures = 0
    for job in jobs:
        try:
            result = job.result(timeout=1)
        except FarmError as exc:
            click.echo(f"error: {job.name}: {exc}", err=True)
            failures += 1
            continue
        _write(job.name, result, formats, out)
    return failures


def _write(name: str, result: dict[str, Any], formats: tuple[str, ...], out: Path | None) -> None:
    for fmt in formats:
        text = render(result, fmt)
        if out is None:
            click.echo(text, nl=False)
            continue
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{Path(name).stem}.{fmt}"
        target.write_text(text, encoding="utf-8")
        click.echo(f"wrote {target}", err=True)


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--output", help="s3://bucket/prefix (or a directory workers share): workers write <job id>.<format>")
@click.option("--format", "formats", multiple=True, type=click.Choice(OUTPUT_FORMATS), help="with --output")
@decoding_options
@friendly_errors
def submit(files: tuple[str, ...], output: str | None, formats: tuple[str, ...], decoding: Decoding) -> None:
    """Queue FILES and print one job id per line."""
    client = Client(_answering_broker())
    options = decoding.options | _delivery(output, formats)
    for job in client.submit_many(files, queue=decoding.queue, **options):
        click.echo(job.id)


def _delivery(output: str | None, formats: tuple[str, ...]) -> dict[str, Any]:
    return {"output": output, "formats": formats} if output else {}


def _emit_outputs(jobs: list[Job]) -> int:
    """Print where the workers wrote each job's files, one URI per line."""
    failures = 0
    for job in jobs:
        try:
            outputs = job.result(timeout=1).get("outputs", {})
        except FarmError as exc:
            click.echo(f"error: {job.name}: {exc}", err=True)
            failures += 1
            continue
        for uri in outputs.values():
            click.echo(uri)
    return failures


@main.command()
@click.argument("job_id")
@friendly_errors
def status(job_id: str) -> None:
    """Show a job's state and progress."""
    current = Client(_answering_broker()).job(job_id).status()
    line = f"{current.id} {current.state} {current.percent:.0f}%"
    click.echo(line + (f" {current.error}" if current.error else ""))


@main.command()
@click.argument("job_id")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="txt", show_default=True)
@click.option("--timeout", type=float, default=None)
@friendly_errors
def result(job_id: str, fmt: str, timeout: float | None) -> None:
    """Wait for a job and print its result."""
    click.echo(render(Client(_answering_broker()).job(job_id).result(timeout), fmt), nl=False)


@main.command()
@friendly_errors
def worker() -> None:
    """Start one worker process per device (GPUs, else the CPU) and supervise them."""
    from farm.worker import run_workers

    sys.exit(run_workers(get_settings()))


@main.command()
@friendly_errors
def up() -> None:
    """Run a local farm in the foreground: Redis (if none answers), workers and Flower."""
    from farm.local import run_local_farm

    sys.exit(run_local_farm(get_settings()))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@friendly_errors
def config(as_json: bool) -> None:
    """Print the effective settings and where each value came from."""
    settings = get_settings()
    values = settings.public()
    if as_json:
        redacted = {key: _redacted(key, value) for key, value in values.items()}  # no Redis password
        click.echo(json.dumps({"values": redacted, "sources": settings.sources}, indent=2))
        return
    width = max(len(k) for k in values)
    for key, value in values.items():
        source = settings.sources.get(key, "FARM_ENV" if key == "env" else "")
        click.echo(f"{key:<{width}}  {_redacted(key, value)!s:<40}  {source}")


def _redacted(key: str, value: Any) -> Any:
    if key in ("broker_url", "result_backend") and isinstance(value, str):
        from farm.client import _safe_url

        return _safe_url(value)
    return value


@main.group()
def model() -> None:
    """Manage model files."""


@model.command("import-ct2")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@friendly_errors
def import_ct2_command(src: Path, dst: Path) -> None:
    """Convert a CTranslate2 Whisper model in SRC to a Hugging Face directory DST."""
    from farm.convert import import_ct2

    click.echo(f"wrote {import_ct2(src, dst)}")


main.add_command(bench)


@main.command()
@click.option("--audio-hours", type=click.FloatRange(min=0, min_open=True), required=True, help="audio hours per day")
@click.option("--peak-ratio", type=click.FloatRange(min=1), default=2.0, show_default=True, help="peak hour / average")
@click.option(
    "--p95-wait", type=click.FloatRange(min=0), default=60.0, show_default=True, help="target p95 queue wait, s"
)
@click.option("--model", "model_name", default="large-v3", show_default=True)
@click.option("--gpu", "gpus", multiple=True, help="T4, P100, A100 or H100 (repeatable; default: all four)")
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
    from farm import capacity as planner
    from farm.capacity_data import GPU_TYPES

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


@main.command()
@click.option("--host", default=None, help="listen address (default: api_host)")
@click.option("--port", type=int, default=None, help="listen port (default: api_port)")
@friendly_errors
def api(host: str | None, port: int | None) -> None:
    """Serve the REST API (OpenAI-compatible transcriptions, jobs, /metrics) until stopped."""
    from farm.api import serve

    serve(get_settings(), host, port)


@main.command()
@friendly_errors
def metrics() -> None:
    """Serve the farm's Prometheus metrics on metrics_port until stopped."""
    from farm.metrics import serve

    settings = get_settings()
    if not settings.metrics_port:
        raise ConfigError("metrics_port: 0 turns the metrics endpoint off; set a port")
    click.echo(f"metrics on http://{settings.api_host}:{settings.metrics_port}/metrics", err=True)
    serve(settings)


if __name__ == "__main__":
    main()
