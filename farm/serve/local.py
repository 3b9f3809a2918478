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

FLOWER_APP = "farm.serve.flower"


def run_local_farm(settings: Settings) -> int:
    server = _ensure_redis(settings)
    if server is not None:
        settings = replace(settings, broker_url=server.url, result_backend=server.url)
    env = {"FARM_BROKER_URL": settings.broker_url, "FARM_RESULT_BACKEND": settings.result_backend}
    monitor = _flower(settings, env)
    children = plan(settings)
    for child in children:
        child.env.update(env | worker_events(bool(monitor)))
    children += monitor + _metrics(settings, env)
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


def worker_events(monitored: bool) -> dict[str, str]:
    """Worker environment: with Flower watching, task events from the first job on.

    Flower switches them on only seconds after each worker starts, and misses the jobs a
    worker takes before that.
    """
    return {"FARM_TASK_EVENTS": "true"} if monitored else {}


def _flower(settings: Settings, env: dict[str, str]) -> list[Child]:
    if importlib.util.find_spec("flower") is None:
        click.echo("flower is not installed; skipping it (pip install flower)", err=True)
        return []
    argv = flower_argv(settings.flower_port, settings.api_host)
    return [Child(replace(CPU, name="flower"), argv, os.environ | env | flower_env(settings))]


def flower_argv(port: int, address: str = "127.0.0.1") -> list[str]:
    """Flower on a plain-Redis view of the farm's broker (its Broker tab needs one), on ``address``."""
    return [sys.executable, "-m", "celery", "-A", FLOWER_APP, "flower", f"--port={port}", f"--address={address}"]


def flower_env(settings: Settings) -> dict[str, str]:
    """Flower's login, passed in its environment (not on a command line others can read)."""
    return {"FLOWER_BASIC_AUTH": settings.flower_basic_auth} if settings.flower_basic_auth else {}


def _metrics(settings: Settings, env: dict[str, str]) -> list[Child]:
    if not settings.metrics_port or importlib.util.find_spec("prometheus_client") is None:
        return []
    argv = [sys.executable, "-m", "farm.cli", "metrics"]
    return [Child(replace(CPU, name="metrics"), argv, os.environ | env)]
