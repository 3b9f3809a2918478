"""The io values an entry point builds from the settings and hands down.

Only entry points (the worker runtime, CLI commands, the API app and the client) hold a
``Settings``; storage, roots and the job-end hooks see these small values instead, so nothing
below an entry point reads the environment or falls back to global settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from farm.io.job_end import JobEndHooks, Metrics, OnceOnly, ResultFiles
from farm.io.metrics import Recorder
from farm.io.outbox import Outbox, OutboxPolicy
from farm.io.roots import Roots
from farm.io.storage import S3Config
from farm.queue.connections import RedisSettings, shared_redis

if TYPE_CHECKING:
    from farm.config import Settings


def s3_config(settings: Settings) -> S3Config:
    """The S3 part of the settings; empty strings mean "let boto3 decide"."""
    return S3Config(
        endpoint_url=settings.s3_endpoint_url or None,
        region=settings.s3_region or None,
        access_key_id=settings.s3_access_key_id or None,
        secret_access_key=settings.s3_secret_access_key or None,
        addressing_style=settings.s3_addressing_style,
        timeout_s=float(settings.s3_timeout_s),
    )


def roots_from(settings: Settings) -> Roots:
    """input_roots plus upload_dir, output_roots plus a local output_uri, and max_input_mb."""
    return Roots(
        inputs=(*settings.input_roots, settings.upload_dir) if settings.input_roots else (),
        outputs=(*settings.output_roots, _local_default(settings.output_uri)) if settings.output_roots else (),
        max_input_mb=settings.max_input_mb,
    )


def job_end_hooks(settings: Settings) -> JobEndHooks:
    """Result files, metrics, then the once-only guard with the webhook, in the order they must run."""
    where = RedisSettings.from_settings(settings)
    return JobEndHooks(
        [
            ResultFiles(s3_config(settings), roots_from(settings), settings.output_uri),
            Metrics(Recorder(where)),  # waits out a Redis restart, so the guard after it finds Redis back
            # after the files: a failed write is retried, then announced (and called back, in one step)
            OnceOnly(where, settings.result_expires, outbox(settings), signed=bool(settings.webhook_secret)),
        ]
    )


def outbox(settings: Settings) -> Outbox:
    """The farm's webhook outbox (in the broker's Redis)."""
    policy = OutboxPolicy(settings.webhook_max_attempts, settings.result_expires)
    return Outbox(shared_redis(RedisSettings.from_settings(settings)), policy)


def _local_default(output_uri: str) -> str:
    return output_uri.removeprefix("file://") if urlparse(output_uri).scheme in ("", "file") else ""
