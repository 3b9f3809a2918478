"""What the farm remembers of each submitted job beside Celery's result backend.

Celery cannot tell a job nobody ever submitted from one still queued (both read
PENDING), and its ``revoke`` is a broadcast that only workers alive at that moment keep.
So producers record every id they submit, cancellations are kept in Redis where a
worker started later still finds them, and an idempotency key names the job it first
created. Every record lives as long as results do (``result_expires``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import redis

from farm.constants import CANCELLED_KEY, IDEMPOTENCY_KEY, SUBMITTED_KEY
from farm.queue.connections import RedisSettings, shared_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    """A job a producer submitted: where it was sent, and when."""

    id: str
    queue: str
    created_at: float


class JobRecords:
    """Submitted ids, cancellations and idempotency keys in the Redis at ``where``."""

    def __init__(self, where: RedisSettings, ttl_s: int) -> None:
        self.where = where
        self.ttl_s = ttl_s

    def add(self, job_id: str, queue: str) -> None:
        key = SUBMITTED_KEY.format(job_id=job_id)
        pipe = self._redis().pipeline(transaction=False)  # one round trip on the submit path
        pipe.hset(key, mapping={"queue": queue, "created_at": time.time()})
        pipe.expire(key, self.ttl_s)
        pipe.execute()

    def remove(self, job_id: str) -> None:
        self._redis().delete(SUBMITTED_KEY.format(job_id=job_id))

    def get(self, job_id: str) -> Submitted | None:
        return _submitted(job_id, self._redis().hgetall(SUBMITTED_KEY.format(job_id=job_id)))

    def standing(self, job_id: str) -> tuple[bool, bool]:
        """(cancelled, submitted) for ``job_id``, in one round trip."""
        pipe = self._redis().pipeline(transaction=False)
        pipe.exists(CANCELLED_KEY.format(job_id=job_id))
        pipe.exists(SUBMITTED_KEY.format(job_id=job_id))
        cancelled, submitted = pipe.execute()
        return bool(cancelled), bool(submitted)

    def cancel(self, job_id: str) -> None:
        self._redis().set(CANCELLED_KEY.format(job_id=job_id), 1, ex=self.ttl_s)

    def cancelled(self, job_id: str) -> bool:
        """Whether ``job_id`` was cancelled; a Redis that is away (restarting) counts as "no".

        A worker asks before it starts a job: failing the job because the answer could not
        be had would lose it (the chaos soak lost one to a Redis restart); running a job
        cancelled during the outage costs only the work.
        """
        try:
            return bool(job_id) and bool(self._redis().exists(CANCELLED_KEY.format(job_id=job_id)))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("cannot tell whether job %s was cancelled (%s); running it", job_id, exc)
            return False

    def claim(self, idempotency_key: str, job_id: str) -> str | None:
        """Bind ``idempotency_key`` to ``job_id``; the id it already names, if it names one."""
        key = _idempotency_key(idempotency_key)
        if self._redis().set(key, job_id, nx=True, ex=self.ttl_s):
            return None
        existing = self._redis().get(key)
        return _text(existing) if existing is not None else self.claim(idempotency_key, job_id)

    def release(self, idempotency_key: str, job_id: str) -> None:
        """Forget the key if it still names ``job_id`` (its submission failed)."""
        key = _idempotency_key(idempotency_key)
        if _text(self._redis().get(key) or b"") == job_id:
            self._redis().delete(key)

    def _redis(self) -> redis.Redis:
        return shared_redis(self.where)


def _submitted(job_id: str, raw: dict[bytes | str, bytes | str]) -> Submitted | None:
    if not raw:
        return None
    fields = {_text(key): _text(value) for key, value in raw.items()}
    return Submitted(job_id, fields.get("queue", ""), float(fields.get("created_at", 0)))


def _idempotency_key(given: str) -> str:
    # A caller's key may be long or hold anything: store its digest.
    return IDEMPOTENCY_KEY.format(digest=hashlib.sha256(given.encode()).hexdigest())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
