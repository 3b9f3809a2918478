"""The worker's Redis transport: an item on a queue it cannot read goes to the dead-letter list.

kombu reads each item it pops from a queue list as a JSON envelope, and Celery then reads
the envelope's headers, without checking either. An item that is not an envelope, or one
with a field of the wrong type (``farm.queue.envelope``), raises inside the consumer loop:
Celery stops the worker process, kombu hands the same item to the next process, and the
farm crash-loops. Anyone who can reach Redis can push anything, so this transport checks
every item before kombu and Celery see it, and moves what it cannot deliver to
``farm.dead`` (``farm.queue.dead_letters``) with one log line. Should Celery still trip
over a message that passed the checks, that message goes to the dead letters too
(acknowledged) instead of taking the process down.

``tasks.app`` selects this transport for redis:// and rediss:// brokers, and
``SentinelTransport`` for sentinel:// ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps, loads

from farm.queue.dead_letters import dead_letter, push
from farm.queue.envelope import UnreadableEnvelopeError, check_envelope
from farm.queue.recovery import owner_key, owner_name

log = logging.getLogger(__name__)

# How long a process's list of held deliveries outlives its last delivery: by then kombu's
# own visibility_timeout sweep (at most a day in practice) has returned them anyway.
OWNER_TTL_S = 2 * 86_400


class QoS(kombu_redis.QoS):
    """kombu's acknowledgement emulation, filing each delivery under this process as well.

    The set ``farm:unacked:<host>:<pid>`` names what this process holds, so the supervisor
    can return it the moment the process dies (``farm.queue.recovery``).
    """

    def append(self, message: Any, delivery_tag: str) -> None:
        key = owner_key(owner_name())
        with self.channel.conn_or_acquire() as client:
            # Filed first: a death in between leaves a name without a message, never the reverse.
            client.pipeline().sadd(key, delivery_tag).expire(key, OWNER_TTL_S).execute()
        super().append(message, delivery_tag)  # type: ignore[no-untyped-call]

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        removed = super()._remove_from_indices(delivery_tag, pipe)  # type: ignore[no-untyped-call]
        return removed.srem(owner_key(owner_name()), delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _brpop_read(self, **options: Any) -> bool:
        # kombu's own _brpop_read, with the item checked before delivery (kombu 5.7).
        try:
            try:
                popped = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # the next poll reconnects
                raise
            if not popped:
                raise Empty()
            dest, item = popped
            queue = _text(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            return self._deliver_item(queue, item)
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()  # type: ignore[no-untyped-call]

    def _deliver_item(self, queue: str, item: bytes) -> bool:
        try:
            payload = loads(_text(item))  # type: ignore[no-untyped-call]
            check_envelope(payload)
        except UnreadableEnvelopeError as exc:
            self._bury(item, str(exc), queue)  # BRPOP took it off the list: nothing to put back
            return False
        except Exception as exc:  # not UTF-8, not JSON, or a kombu type marker whose decoder failed
            self._bury(item, f"it is not a JSON envelope: {type(exc).__name__}: {exc}", queue)
            return False
        self.connection._deliver(payload, queue)
        return True

    def basic_consume(self, queue: str, no_ack: bool, callback: Callable[[Any], Any], *args: Any, **kw: Any) -> Any:
        return super().basic_consume(queue, no_ack, self._guarded(callback), *args, **kw)  # type: ignore[no-untyped-call]

    def _guarded(self, callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def deliver(message: Any) -> Any:
            try:
                return callback(message)
            except self.connection_errors:
                raise
            except Exception as exc:  # Celery refused a message the checks let through: never fatal
                self._bury_delivered(message, f"the worker could not take it: {type(exc).__name__}: {exc}")
                return None

        return deliver

    def _bury_delivered(self, message: Any, reason: str) -> None:
        raw: str = dumps(message._raw)  # type: ignore[no-untyped-call]
        queue = str(message.delivery_info.get("routing_key", ""))
        self._bury(raw.encode(), reason, queue)
        if not message.acknowledged:
            message.ack()  # out of the unacked hash, so no restart brings it back

    def _bury(self, item: bytes, reason: str, queue: str) -> None:
        log.error("moved an unreadable item from queue %s to the dead letters: %s", queue, reason)
        with self.conn_or_acquire() as client:
            push(client, dead_letter(item, reason, queue))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """The same checks on a broker reached through Redis Sentinel (``sentinel://``)."""


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
