"""`farm config`: the effective settings and where each came from."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from farm.commands.errors import friendly_errors
from farm.config import Settings, get_settings

if TYPE_CHECKING:
    from farm.serve.devices import Sizing


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@friendly_errors
def config(as_json: bool) -> None:
    """Print the effective settings and where each value came from."""
    settings = get_settings()
    values = settings.public()
    sizes = _sizing(settings)
    if as_json:
        redacted = {key: _redacted(key, value) for key, value in values.items()}  # no Redis password
        sizing = [asdict(size) for size in sizes]
        click.echo(json.dumps({"values": redacted, "sources": settings.sources, "sizing": sizing}, indent=2))
        return
    width = max(len(k) for k in values)
    for key, value in values.items():
        source = settings.sources.get(key, "FARM_ENV" if key == "env" else "")
        click.echo(f"{key:<{width}}  {_redacted(key, value)!s:<40}  {source}")
    for size in sizes:
        click.echo(f"{'sizing':<{width}}  {size.describe()}")


def _sizing(settings: Settings) -> list[Sizing]:
    """What `farm worker` would give each device it serves (0 settings resolved)."""
    from farm.serve.devices import cpu_workers_for, gpu_inventory, select_devices
    from farm.serve.supervisor import sizing

    gpus = gpu_inventory()
    devices = select_devices(settings.devices, cpu_workers_for(settings.cpu_workers))
    return [sizing(settings, device, gpus) for device in devices]


def _redacted(key: str, value: Any) -> Any:
    if key in ("broker_url", "result_backend") and isinstance(value, str):
        from farm.client import _safe_url

        return _safe_url(value)
    return value
