"""What happens once a job ends: result files, the webhook, the metrics.

A job that names an ``output`` (or asks for ``formats`` when ``output_uri`` is set) gets
``<output>/<job id>.<format>`` for each format, in S3 or a directory the workers share;
the result then lists them under ``"outputs"``. Producers turn S3 outputs into presigned
URLs (``presigned_urls``) so users need no credentials to fetch them.

The tasks call ``finish_job`` with each result and ``fail_job`` when a job fails for
good; both are safe to call for parts of a fanned-out file (only the whole job is
announced).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis

from farm.constants import ENDED_KEY
from farm.io.from_settings import roots_from, s3_config
from farm.io.metrics import audio_updates, failure_updates, recorder, success_update
from farm.io.outbox import Outbox, OutboxPolicy
from farm.io.roots import Roots
from farm.io.storage import S3Config, S3Storage, storage_for
from farm.io.webhooks import JobEvent, build, job_event
from farm.job.formats import render
from farm.job.result import Result
from farm.job.spec import Delivery, JobSpec, failed_job
from farm.queue.connections import RedisSettings, shared_redis

if TYPE_CHECKING:
    from farm.config import Settings

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
}
DEFAULT_FORMATS = ("json",)
# Set once per job id when its end is announced: a redelivered job or a second failing
# part must not send a second webhook.


def output_location(base: str, job_id: str, fmt: str) -> str:
    return f"{base.rstrip('/')}/{job_id}.{fmt}"


def write_outputs(
    result: Mapping[str, Any], job_id: str, base: str, formats: tuple[str, ...], s3: S3Config, roots: Roots
) -> dict[str, str]:
    """Render ``result`` in each format and store it; return where each one went."""
    written = {}
    for fmt in formats:
        uri = output_location(base, job_id, fmt)
        storage_for(uri, s3, roots).write(uri, render(result, fmt).encode("utf-8"), CONTENT_TYPES[fmt])
        written[fmt] = uri
    return written


def presigned_urls(outputs: Mapping[str, str], s3: S3Config, expires_s: int) -> dict[str, str]:
    """HTTP(S) URLs for S3 outputs (anyone holding one may GET it until it expires)."""
    storage = S3Storage(s3)
    return {fmt: storage.presign(uri, expires_s) for fmt, uri in outputs.items() if uri.startswith("s3://")}


def finish_job(job_id: str, spec: JobSpec, result: Result, settings: Settings) -> Result:
    """Write the result files, count the job and queue its webhook; return the result."""
    # A merged result's audio was counted part by part.
    updates = audio_updates(result) if "parts" not in result else []
    if spec.part is not None:
        recorder(settings).record_once(job_id, *updates)  # the part's own id
        return result
    delivery = spec.delivery
    destination = delivery.output or (settings.output_uri if delivery.formats else "")
    if destination:
        formats = delivery.formats or DEFAULT_FORMATS
        result = result | {
            "outputs": write_outputs(result, job_id, destination, formats, s3_config(settings), roots_from(settings))
        }
    recorder(settings).record_once(job_id, *updates, success_update())  # once per job id, through Redis restarts
    if first_end(settings, job_id):
        _notify(settings, delivery, job_event(job_id, "succeeded", result=result))
    return result


def fail_job(job_id: str, message: Any, error: BaseException, settings: Settings) -> None:
    """Count the failure and tell the callback URL, once per job (a part names its job)."""
    job_id, delivery = failed_job(job_id, message)
    recorder(settings).record_once(job_id, *failure_updates(error))
    if not first_end(settings, job_id):
        return
    _notify(settings, delivery, job_event(job_id, "failed", error=str(error) or type(error).__name__))


def _notify(settings: Settings, delivery: Delivery, event: JobEvent) -> None:
    if delivery.callback_url:
        # Signed afresh by whichever process sends it: the outbox keeps no secret.
        outbox(settings).put(build(delivery.callback_url, event, ""), signed=bool(settings.webhook_secret))


def outbox(settings: Settings) -> Outbox:
    """The farm's webhook outbox (in the broker's Redis)."""
    policy = OutboxPolicy(settings.webhook_max_attempts, settings.result_expires)
    return Outbox(shared_redis(RedisSettings.from_settings(settings)), policy)


def first_end(settings: Settings, job_id: str) -> bool:
    if not job_id:
        return True
    try:
        key = ENDED_KEY.format(job_id=job_id)
        return bool(
            shared_redis(RedisSettings.from_settings(settings)).set(key, 1, nx=True, ex=settings.result_expires)
        )
    except (redis.RedisError, OSError) as exc:
        log.warning("cannot check whether job %s was announced: %s", job_id, exc)
        return True
