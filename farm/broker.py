"""Celery configuration shared by the worker app and the client, and a broker probe.

Plain values only: this module never imports Celery, so the client and the tasks
package build their apps from the same dictionary.
"""

from __future__ import annotations

from typing import Any

from farm.config import Settings
from farm.constants import SHARED_QUEUE


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        # JSON only: a pickle message could run code on the worker.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": SHARED_QUEUE,
        # Ack after the job ran, and requeue when the child dies mid-job: no job is lost.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One job at a time per child, so a long job never holds others hostage.
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        "task_soft_time_limit": settings.soft_time_limit,
        "task_time_limit": settings.time_limit,
        "result_expires": settings.result_expires,
        "result_extended": True,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "worker_max_tasks_per_child": settings.max_tasks_per_child or None,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
    }


def broker_reachable(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis server answers PING at ``url``."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False
