"""`farm config`: the effective settings and where each came from."""

from __future__ import annotations

import json
from typing import Any

import click

from farm.commands.errors import friendly_errors
from farm.config import get_settings


@click.command()
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
