"""``farm up``: a whole farm on this machine, in the foreground.

Starts Redis when nothing answers at ``broker_url`` (on that URL's port), the
per-device workers, and Flower when it is installed; Ctrl-C stops them all, letting
running jobs finish.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import replace
from urllib.parse import urlparse

import click

from farm.config import Settings
from farm.queue.connections import RedisSettings, reachable
from farm.serve.devices import CPU
from farm.serve.redis_server import RedisServer, start_redis
from farm.serve.supervisor import Child, Supervisor, plan

FLOWER_PORT = 5555


def run_local_farm(settings: Settings) -> int:
    server = _ensure_redis(settings)
    if server is not None:
        settings = replace(settings, broker_url=server.url, result_backend=server.url)
    env = {"FARM_BROKER_URL": settings.broker_url, "FARM_RESULT_BACKEND": settings.result_backend}
    children = plan(settings)
    for child in children:
        child.env.update(env)
    children += _flower(env) + _metrics(settings, env)
    try:
        return Supervisor(children).run()
    finally:
        if server is not None:
            server.stop()


def _ensure_redis(settings: Settings) -> RedisServer | None:
    if reachable(RedisSettings.from_settings(settings)):
        return None
    port = urlparse(settings.broker_url).port or 6379
    click.echo(f"starting redis-server on port {port}", err=True)
    return start_redis(port=port)


def _flower(env: dict[str, str]) -> list[Child]:
    if importlib.util.find_spec("flower") is None:
        click.echo("flower is not installed; skipping it (pip install flower)", err=True)
        return []
    return [Child(replace(CPU, name="flower"), flower_argv(FLOWER_PORT), os.environ | env)]


def flower_argv(port: int) -> list[str]:
    """Flower on the farm's own Celery app, so it reads the broker from the same settings."""
    return [sys.executable, "-m", "celery", "-A", "tasks", "flower", f"--port={port}"]


def _metrics(settings: Settings, env: dict[str, str]) -> list[Child]:
    if not settings.metrics_port or importlib.util.find_spec("prometheus_client") is None:
        return []
    argv = [sys.executable, "-m", "farm.cli", "metrics"]
    return [Child(replace(CPU, name="metrics"), argv, os.environ | env)]
