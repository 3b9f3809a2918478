"""The worker's Redis transport: an item on a queue it cannot read is dropped, not fatal.

kombu reads each item it pops from a queue list as a JSON envelope before Celery sees
it. Bytes that are no envelope at all (not UTF-8, not JSON, no ``properties``, a body
that is not base64) make it raise inside the consumer loop, and Celery stops the worker
process ("Unrecoverable error"); the jobs that process held then wait out the visibility
timeout. Anyone who can reach Redis can push anything, so the worker logs such an item
and drops it instead. A readable envelope whose *task* is bad stays Celery's to refuse
(it does: an invalid task is logged and acknowledged).

``tasks.app`` selects this transport for redis:// and rediss:// brokers.
"""

from __future__ import annotations

import binascii
import json
import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Message

log = logging.getLogger(__name__)

# What kombu itself reads from an envelope before anyone else can object.
ROUTING_KEYS = ("exchange", "routing_key")


class UnreadableEnvelopeError(Exception):
    """An item on a queue list that is not a kombu message envelope."""


class CheckedMessage(Message):
    """kombu's message, refusing an envelope it would otherwise trip over later."""

    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        check_envelope(payload)
        try:
            super().__init__(payload, channel=channel, **kwargs)  # type: ignore[no-untyped-call]
        except (binascii.Error, ValueError, TypeError) as exc:  # the body's transfer encoding
            raise UnreadableEnvelopeError(f"its body cannot be decoded: {exc}") from exc


def check_envelope(payload: Any) -> None:
    """Raise UnreadableEnvelopeError unless ``payload`` has what kombu needs to deliver it."""
    properties = payload.get("properties") if isinstance(payload, dict) else None
    if not isinstance(properties, dict) or "delivery_tag" not in properties:
        raise UnreadableEnvelopeError("it is not a message envelope (no properties with a delivery_tag)")
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not all(key in info for key in ROUTING_KEYS):
        raise UnreadableEnvelopeError("its properties carry no delivery_info with exchange and routing_key")


class Channel(kombu_redis.Channel):
    Message = CheckedMessage

    def _brpop_read(self, **options: Any) -> bool:
        try:
            return bool(super()._brpop_read(**options))  # type: ignore[no-untyped-call]
        except (UnicodeDecodeError, json.JSONDecodeError, UnreadableEnvelopeError) as exc:
            # BRPOP already took the item off the list: nothing to put back or acknowledge.
            log.error("dropped an unreadable item from the queue: %s", exc)
            return False


class Transport(kombu_redis.Transport):
    Channel = Channel
