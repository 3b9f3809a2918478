"""The dead-letter list: queue items no worker could read, kept for a person to look at.

A worker that pops an item it cannot deliver (not JSON, not a task envelope, a field of
the wrong type) moves it here with the reason and the time instead of crashing on it or
dropping it; ``farm dead-letters`` lists them. The list keeps the newest ``KEEP`` items,
so a flood of garbage cannot fill Redis.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from farm.constants import DEAD_LETTER_KEY

KEEP = 10_000


@dataclass(frozen=True)
class DeadLetter:
    item: str  # the item exactly as it was on the queue: UTF-8 text, or base64 when it was not text
    item_encoding: str  # "utf-8" or "base64"
    reason: str
    queue: str
    time: str  # ISO 8601, UTC

    def raw(self) -> bytes:
        return base64.b64decode(self.item) if self.item_encoding == "base64" else self.item.encode()


def dead_letter(item: bytes | str, reason: str, queue: str, now: datetime | None = None) -> DeadLetter:
    when = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
    raw = item.encode("utf-8", "surrogateescape") if isinstance(item, str) else item
    try:
        return DeadLetter(raw.decode("utf-8"), "utf-8", reason, queue, when)
    except UnicodeDecodeError:
        return DeadLetter(base64.b64encode(raw).decode(), "base64", reason, queue, when)


def push(client: Any, letter: DeadLetter) -> None:
    """Add ``letter`` to the list (``client``: a redis-py client or pipeline)."""
    pipe = client.pipeline(transaction=False)
    pipe.lpush(DEAD_LETTER_KEY, json.dumps(asdict(letter)))
    pipe.ltrim(DEAD_LETTER_KEY, 0, KEEP - 1)
    pipe.execute()


def newest(client: Any, count: int = 100) -> list[DeadLetter]:
    """The newest ``count`` dead letters, newest first."""
    return [parse(raw) for raw in client.lrange(DEAD_LETTER_KEY, 0, count - 1)]


def parse(raw: bytes | str) -> DeadLetter:
    return DeadLetter(**json.loads(raw))
