"""Which farm a command talks to: the configured one, or a private one it starts and stops."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import click

from farm.client import Client, _safe_url
from farm.config import Settings
from farm.errors import BrokerUnavailableError
from farm.queue.connections import RedisSettings, reachable


def private_or_configured_farm(settings: Settings, stack: ExitStack, options: dict[str, Any]) -> Settings:
    """The configured farm when it has a worker; otherwise (embedded_broker) a private Redis and
    worker that ``stack`` stops. ``options`` are checked against the private worker's model."""
    reason = _why_not_served(settings)
    if reason is None:
        return settings
    if not settings.embedded_broker:
        raise BrokerUnavailableError(f"{reason} and embedded_broker is off; start `farm worker` or `farm up`")
    from farm.job.languages import check_model_supports
    from farm.serve.embedded import local_farm, require_worker_side

    check_model_supports(settings.model, options.get("language") or settings.language, options.get("task"))
    require_worker_side(settings.engine)
    click.echo(f"{reason}; starting a private Redis and worker", err=True)
    return stack.enter_context(local_farm(settings)).settings


def answering_broker(settings: Settings) -> Settings:
    """``settings`` once their broker answers; fail at once with one line otherwise (Celery would
    retry a dead or password-refusing Redis for ~20 s, then raise a bare RuntimeError)."""
    if not reachable(RedisSettings.from_settings(settings)):
        raise BrokerUnavailableError(f"cannot reach the broker at {_safe_url(settings.broker_url)}")
    return settings


def _why_not_served(settings: Settings) -> str | None:
    if settings.embedded_broker and not settings.chosen("broker_url"):
        # Whatever answers at the default URL may be another farm: never hand it a job (or leave
        # keys there) unless the user pointed us at it.
        return "no broker_url is set"
    if not reachable(RedisSettings.from_settings(settings)):
        return "no broker answered"
    probe = Client(settings)
    try:
        return None if probe.workers(timeout=1.0) else "no worker answered"
    finally:
        probe.close()
