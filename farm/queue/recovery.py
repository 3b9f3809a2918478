"""A dead worker process's jobs go back to their queues at once, not after ``visibility_timeout``.

kombu's Redis transport keeps every delivered, unacknowledged message in the ``unacked``
hash (by delivery tag) and hands it out again only once ``visibility_timeout`` (an hour
by default, as it must outlast the longest job) has passed. A worker process killed
with ``kill -9`` (the OOM killer, a node drain) cannot give back what it held, so its
jobs sat ``STARTED`` for an hour. The farm's transport also files each tag under its
process (``farm:unacked:<host>:<pid>``); the supervisor, which sees the process die,
calls ``reclaim`` and the jobs run again within seconds. A job whose result is already
stored (it finished, but the process died before acknowledging) is acknowledged instead,
so it does not run twice.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from farm.constants import UNACKED_OWNER_KEY
from farm.queue.connections import RedisSettings, new_redis

log = logging.getLogger(__name__)

# Celery's result key and the states after which a job never runs again.
RESULT_KEY = "celery-task-meta-{job_id}"
FINISHED_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


def owner_name(host: str | None = None, pid: int | None = None) -> str:
    """The name a consuming process files its deliveries under: ``host:pid``."""
    return f"{host or socket.gethostname()}:{pid or os.getpid()}"


def owner_key(owner: str) -> str:
    return UNACKED_OWNER_KEY.format(owner=owner)


@dataclass
class Reclaimed:
    requeued: list[str] = field(default_factory=list)  # job ids back on their queues
    finished: list[str] = field(default_factory=list)  # already had a result: acknowledged


def reclaim(broker: RedisSettings, results: RedisSettings, owner: str) -> Reclaimed:
    """Return what the dead process ``owner`` held to its queues (kombu's own restore) and forget it."""
    from kombu.connection import Connection

    from farm.queue.transport import Transport

    done = Reclaimed()
    ssl = broker.ssl_options() if broker.tls else False
    with Connection(broker.url, transport=Transport, ssl=ssl) as connection:  # type: ignore[no-untyped-call]
        channel: Any = connection.default_channel
        client, stored = channel._create_client(), new_redis(results)
        for tag in client.smembers(owner_key(owner)):
            _reclaim_one(channel, client, tag, stored, done)
        client.delete(owner_key(owner))
    return done


def _reclaim_one(channel: Any, client: Any, tag: bytes, results: Any, done: Reclaimed) -> None:
    raw = client.hget(channel.unacked_key, tag)
    if raw is None:
        return  # acknowledged after all, or kombu's own sweep already returned it
    job_id = _job_id(raw)
    if job_id and _finished(results, job_id):
        channel.qos._remove_from_indices(tag).execute()
        done.finished.append(job_id)
        return
    channel.qos.restore_by_tag(tag, client=client)
    done.requeued.append(job_id)


def _job_id(raw: bytes) -> str:
    try:
        return str(json.loads(raw)[0]["headers"]["id"])
    except (ValueError, LookupError, TypeError):
        return ""


def _finished(results: Any, job_id: str) -> bool:
    stored = results.get(RESULT_KEY.format(job_id=job_id))
    try:
        return bool(stored) and json.loads(stored).get("status") in FINISHED_STATES
    except (ValueError, AttributeError):
        return False
