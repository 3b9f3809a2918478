"""Celery configuration shared by the worker app and the client.

Plain values only: this module never imports Celery, so the client and the tasks
package build their apps from the same dictionary.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from farm.config import Settings
from farm.constants import SHARED_QUEUE
from farm.queue.connections import RedisSettings
from farm.queue.sentinel import is_sentinel, parse_sentinel_url

# kombu's Redis transport, but an unreadable item on a queue is dropped instead of
# stopping the worker process (farm/queue/transport.py).
WORKER_TRANSPORTS = {
    "redis": "farm.queue.transport:Transport",
    "rediss": "farm.queue.transport:Transport",
    "sentinel": "farm.queue.transport:SentinelTransport",
}
# Tries to store a result while Redis is away (exponential backoff capped at 10 s, so
# about a minute): a job that finished during a Redis restart keeps its result.
RESULT_STORE_RETRIES = 15


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": _celery_url(settings.broker_url),
        "result_backend": _celery_url(settings.result_backend),
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
        "broker_transport_options": _transport_options(settings),
        "result_backend_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            **_sentinel_options(settings.result_backend),
        },
        "broker_connection_retry_on_startup": True,
        "worker_max_tasks_per_child": settings.max_tasks_per_child or None,
        "worker_max_memory_per_child": settings.max_memory_per_child or None,
        "result_backend_always_retry": True,
        "result_backend_max_retries": RESULT_STORE_RETRIES,
        "worker_hijack_root_logger": False,
        # Three event messages per job otherwise; monitors (Flower) switch them on.
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        **_tls_config(settings),
    }


def worker_celery_config(settings: Settings) -> dict[str, Any]:
    """``celery_config`` plus what only a consuming worker needs."""
    transport = WORKER_TRANSPORTS.get(urlparse(settings.broker_url).scheme)
    return celery_config(settings) | ({"broker_transport": transport} if transport else {})


def _celery_url(url: str) -> str:
    """``url`` as Celery reads it: a Sentinel URL's master name moves to the transport options."""
    return parse_sentinel_url(url).celery_url() if is_sentinel(url) else url


def _sentinel_options(url: str) -> dict[str, Any]:
    return {"master_name": parse_sentinel_url(url).master} if is_sentinel(url) else {}


def _transport_options(settings: Settings) -> dict[str, Any]:
    return {
        "visibility_timeout": settings.visibility_timeout,
        # kombu looks for jobs a dead worker left unacknowledged only every ~100 s by
        # default; sweep every few seconds so they come back soon after the timeout.
        "unacked_restore_interval": min(10, max(1, settings.visibility_timeout // 10)),
        "unacked_restore_throttle": 1,
        **_sentinel_options(settings.broker_url),
    }


def _tls_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {}
    broker = RedisSettings.from_settings(settings)
    backend = RedisSettings.from_settings(settings, settings.result_backend)
    if broker.tls:
        config["broker_use_ssl"] = broker.ssl_options()
    if backend.tls:
        config["redis_backend_use_ssl"] = backend.ssl_options()
    return config
