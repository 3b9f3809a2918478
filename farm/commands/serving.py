"""`farm worker`, `up`, `api` and `metrics`: long-running farm processes."""

from __future__ import annotations

import sys

import click

from farm.commands.errors import friendly_errors
from farm.config import get_settings
from farm.errors import ConfigError


@click.command()
@friendly_errors
def worker() -> None:
    """Start one worker process per device (GPUs, else the CPU) and supervise them."""
    from farm.serve.supervisor import run_workers

    sys.exit(run_workers(get_settings()))


@click.command()
@friendly_errors
def up() -> None:
    """Run a local farm in the foreground: Redis (if none answers), workers and Flower."""
    from farm.serve.local import run_local_farm

    sys.exit(run_local_farm(get_settings()))


@click.command()
@click.option("--host", default=None, help="listen address (default: api_host)")
@click.option("--port", type=int, default=None, help="listen port (default: api_port)")
@friendly_errors
def api(host: str | None, port: int | None) -> None:
    """Serve the REST API (OpenAI-compatible transcriptions, jobs, /metrics) until stopped."""
    from farm.api import serve

    serve(get_settings(), host, port)


@click.command()
@friendly_errors
def metrics() -> None:
    """Serve the farm's Prometheus metrics on metrics_port until stopped."""
    from farm.io.metrics import serve

    settings = get_settings()
    if not settings.metrics_port:
        raise ConfigError("metrics_port: 0 turns the metrics endpoint off; set a port")
    click.echo(f"metrics on http://{settings.api_host}:{settings.metrics_port}/metrics", err=True)
    serve(settings)
