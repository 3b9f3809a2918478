"""The API's index of the jobs it accepted: ids by submission time plus a little metadata.

Celery's result backend can say how a job stands but not which jobs exist, so
``GET /v1/jobs`` lists from here. Entries live as long as results do (``result_expires``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from farm.constants import API_JOB_KEY, API_JOBS_INDEX_KEY
from farm.queue.connections import RedisSettings, shared_redis

INDEX_KEY = API_JOBS_INDEX_KEY
ENTRY_KEY = API_JOB_KEY
SCAN_BATCH = 200


@dataclass(frozen=True)
class Entry:
    id: str
    name: str
    created_at: float


class JobRegistry:
    def __init__(self, where: RedisSettings, ttl_s: int) -> None:
        self.where = where
        self.ttl_s = ttl_s

    def add(self, job_id: str, name: str) -> Entry:
        entry = Entry(job_id, name, time.time())
        key = ENTRY_KEY.format(job_id=job_id)
        pipe = self._redis().pipeline()
        pipe.hset(key, mapping={"name": name, "created_at": entry.created_at})
        pipe.expire(key, self.ttl_s)
        pipe.zadd(INDEX_KEY, {job_id: entry.created_at})
        pipe.zremrangebyscore(INDEX_KEY, "-inf", entry.created_at - self.ttl_s)
        pipe.execute()
        return entry

    def get(self, job_id: str) -> Entry | None:
        raw = self._redis().hgetall(ENTRY_KEY.format(job_id=job_id))
        return _entry(job_id, raw) if raw else None

    def newest(self, since: float | None = None) -> Iterator[Entry]:
        """Entries newest first, fetched in batches as the caller consumes them."""
        offset = 0
        while True:
            ids = self._redis().zrevrangebyscore(
                INDEX_KEY, "+inf", since if since is not None else "-inf", start=offset, num=SCAN_BATCH
            )
            if not ids:
                return
            pipe = self._redis().pipeline(transaction=False)
            for job_id in ids:
                pipe.hgetall(ENTRY_KEY.format(job_id=_text(job_id)))
            for job_id, raw in zip(ids, pipe.execute(), strict=True):
                if raw:
                    yield _entry(_text(job_id), raw)
            offset += len(ids)

    def _redis(self) -> redis.Redis:
        return shared_redis(self.where)


def _entry(job_id: str, raw: Any) -> Entry:
    fields = {_text(key): _text(value) for key, value in raw.items()}
    return Entry(job_id, fields.get("name", ""), float(fields.get("created_at", 0)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
