"""`farm dead-letters`: the queue items no worker could read, newest first."""

from __future__ import annotations

import json
from dataclasses import asdict

import click
import redis

from farm.commands.errors import friendly_errors
from farm.config import get_settings
from farm.errors import BrokerUnavailableError
from farm.queue.connections import RedisSettings, new_redis
from farm.queue.dead_letters import DeadLetter, newest

SHOWN_ITEM_CHARS = 200


@click.command("dead-letters")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="how many to show")
@click.option("--json", "as_json", is_flag=True, help="one JSON record per line, the whole item included")
@friendly_errors
def dead_letters(limit: int, as_json: bool) -> None:
    """List the queue items workers could not read (kept in the farm.dead list)."""
    try:
        letters = newest(new_redis(RedisSettings.from_settings(get_settings())), limit)
    except (redis.RedisError, OSError) as exc:
        raise BrokerUnavailableError(f"cannot read the dead letters: {type(exc).__name__}") from exc
    for letter in letters:
        click.echo(json.dumps(asdict(letter)) if as_json else _line(letter))


def _line(letter: DeadLetter) -> str:
    item = letter.item if len(letter.item) <= SHOWN_ITEM_CHARS else letter.item[:SHOWN_ITEM_CHARS] + "..."
    return f"{letter.time} {letter.queue}: {letter.reason}\n    {letter.item_encoding}: {item}"
