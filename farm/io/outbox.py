"""A durable outbox of webhook deliveries in Redis, drained by every worker and API process.

A job's end puts its webhook here (a hash per delivery plus a sorted set by when each
is due) instead of on a thread of the process that ran the job, so a worker killed
right after a job still gets its webhook delivered: by another worker, its own
restart, or the API. A drainer claims a due delivery by pushing its due time a lease
ahead (atomically, so two drainers never send it at once), POSTs it signed afresh, and
then drops it, or sets it due again after a doubling backoff. A drainer that dies
mid-attempt leaves the claim to expire and someone else retries: at least once, always
with the same ``X-Farm-Delivery`` id, so receivers can drop duplicates.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis
from redis.typing import EncodableT, FieldT

from farm.constants import WEBHOOK_KEY, WEBHOOK_OUTBOX_KEY
from farm.io.webhooks import DELIVERY_HEADER, MAX_BACKOFF_S, TIMEOUT_S, Webhook, attempt, host, signed

log = logging.getLogger(__name__)

LEASE_S = 3 * TIMEOUT_S  # longer than any attempt, so a live drainer's claim never lapses
POLL_S = 0.5
BATCH = 16
# Claim a delivery that is due: move its due time a lease ahead and return it.
_CLAIM = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return false end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return redis.call('HGETALL', KEYS[2])
"""
# Mark a job's end as announced and queue its webhook in one step, or do neither.
_PUT_FIRST = """
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], 'url', ARGV[2], 'body', ARGV[3], 'headers', ARGV[4], 'attempts', 0, 'signed', ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[8])
return 1
"""


@dataclass(frozen=True)
class OutboxPolicy:
    max_attempts: int
    ttl_s: int  # a delivery still pending after this long is dropped
    first_backoff_s: float = 1.0


@dataclass(frozen=True)
class Pending:
    webhook: Webhook
    attempts: int
    signed: bool  # sent with a secret: only a drainer that holds one may send it


class Outbox:
    """Pending deliveries in the Redis behind ``client``."""

    def __init__(self, client: redis.Redis, policy: OutboxPolicy) -> None:
        self.redis = client
        self.policy = policy

    def put(self, webhook: Webhook, signed: bool) -> str:
        """Queue ``webhook`` for delivery now; return its delivery id."""
        delivery_id = webhook.headers[DELIVERY_HEADER]
        key = WEBHOOK_KEY.format(delivery_id=delivery_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping=_fields(webhook, signed))
        pipe.expire(key, self.policy.ttl_s)
        pipe.zadd(WEBHOOK_OUTBOX_KEY, {delivery_id: time.time()})
        pipe.execute()
        return delivery_id

    def put_first(self, marker: str, marker_ttl_s: int, webhook: Webhook, signed: bool) -> bool:
        """Set ``marker`` unless it is set, and queue ``webhook`` in the same step; return
        whether this call set it. A process killed in between cannot leave one without the other."""
        delivery_id = webhook.headers[DELIVERY_HEADER]
        fields = _fields(webhook, signed)
        keys = [marker, WEBHOOK_KEY.format(delivery_id=delivery_id), WEBHOOK_OUTBOX_KEY]
        argv = [marker_ttl_s, fields["url"], fields["body"], fields["headers"], fields["signed"]]
        return bool(self.redis.eval(_PUT_FIRST, 3, *keys, *argv, self.policy.ttl_s, time.time(), delivery_id))

    def pending(self) -> int:
        return int(self.redis.zcard(WEBHOOK_OUTBOX_KEY))

    def due(self, now: float) -> list[str]:
        ids = self.redis.zrangebyscore(WEBHOOK_OUTBOX_KEY, "-inf", now, start=0, num=BATCH)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def claim(self, delivery_id: str, now: float) -> Pending | None:
        key = WEBHOOK_KEY.format(delivery_id=delivery_id)
        raw = self.redis.eval(_CLAIM, 2, WEBHOOK_OUTBOX_KEY, key, delivery_id, now, now + LEASE_S)
        if raw is None:
            return None  # another drainer has it
        if not raw:
            self.done(delivery_id)  # its hash expired: nothing left to send
            return None
        return _pending(raw)

    def done(self, delivery_id: str) -> None:
        pipe = self.redis.pipeline()
        pipe.zrem(WEBHOOK_OUTBOX_KEY, delivery_id)
        pipe.delete(WEBHOOK_KEY.format(delivery_id=delivery_id))
        pipe.execute()

    def again_later(self, delivery_id: str, attempts: int, now: float) -> None:
        backoff = min(MAX_BACKOFF_S, self.policy.first_backoff_s * 2 ** (attempts - 1))
        pipe = self.redis.pipeline()
        pipe.hset(WEBHOOK_KEY.format(delivery_id=delivery_id), "attempts", attempts)
        pipe.zadd(WEBHOOK_OUTBOX_KEY, {delivery_id: now + backoff})
        pipe.execute()


def send_one(outbox: Outbox, delivery_id: str, secret: str) -> None:
    """Try one due delivery (if this drainer can claim it) and record the outcome."""
    pending = outbox.claim(delivery_id, time.time())
    if pending is None:
        return
    if pending.signed and not secret:
        outbox.again_later(delivery_id, pending.attempts, time.time())  # for a drainer with the secret
        return
    outcome = attempt(signed(pending.webhook, secret) if pending.signed else pending.webhook)
    attempts = pending.attempts + 1
    if outcome is None and attempts < outbox.policy.max_attempts:
        outbox.again_later(delivery_id, attempts, time.time())
        return
    outbox.done(delivery_id)
    if outcome is not True:
        log.warning("webhook to %s not delivered after %d attempt(s)", host(pending.webhook.url), attempts)


def drain(outbox: Outbox, secret: str, pool: ThreadPoolExecutor) -> int:
    """Send every delivery now due (a few at once); return how many were due."""
    due = outbox.due(time.time())
    list(pool.map(lambda delivery_id: send_one(outbox, delivery_id, secret), due))
    return len(due)


class Drainer:
    """A daemon thread that drains the outbox every ``POLL_S`` (or at once when kicked)."""

    def __init__(self, outbox: Outbox, secret: str) -> None:
        self.outbox = outbox
        self.secret = secret
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="farm-outbox", daemon=True)

    def start(self) -> Drainer:
        self._thread.start()
        return self

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=LEASE_S)

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="farm-webhook") as pool:
            while not self._stop.is_set():
                self._drain_quietly(pool)
                self._wake.wait(POLL_S)
                self._wake.clear()

    def _drain_quietly(self, pool: ThreadPoolExecutor) -> None:
        try:
            drain(self.outbox, self.secret, pool)
        except (redis.RedisError, OSError) as exc:
            log.warning("cannot drain the webhook outbox: %s", exc)  # Redis away: next round


def _fields(webhook: Webhook, signed: bool) -> dict[FieldT, EncodableT]:
    headers = json.dumps(webhook.headers)
    return {"url": webhook.url, "body": webhook.body, "headers": headers, "attempts": 0, "signed": int(signed)}


def _pending(raw: list[Any]) -> Pending:
    fields = {_text(raw[i]): raw[i + 1] for i in range(0, len(raw), 2)}
    headers = json.loads(_text(fields["headers"]))
    webhook = Webhook(_text(fields["url"]), bytes(fields["body"]), headers)
    return Pending(webhook, int(fields.get("attempts", 0)), _text(fields.get("signed", b"0")) == "1")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
