"""Submit jobs, follow their progress and fetch their results.

Producers install only ``whisperfarm`` (no torch, no numpy): this module talks to the
broker through Celery by task name and never imports the worker side.

    from farm.client import Client
    client = Client()
    job = client.submit("call.flac", language="en")
    print(job.result(timeout=600)["text"])
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from farm.config import Settings, get_settings
from farm.constants import PROGRESS_STATE, SHARED_QUEUE, TRANSCRIBE_TASK
from farm.errors import (
    BrokerUnavailableError,
    InvalidJobError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
)
from farm.io.delivery import presigned_urls
from farm.io.from_settings import s3_config
from farm.io.storage import S3Storage, local_file, staging_uri
from farm.job.progress import PartialText, partial_text
from farm.job.spec import Delivery, job_message, parse_delivery, parse_options
from farm.job.transcript import TranscribeOptions
from farm.queue.broker import celery_config
from farm.queue.connections import RedisSettings, reachable
from farm.queue.records import JobRecords

BROKER_CHECK_INTERVAL_S = 5.0

# A producer should hear at once that Redis is gone, not after the workers' long retries.
_FAIL_FAST = {
    "result_backend_always_retry": False,
    "broker_connection_timeout": 2.0,
    "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5},
    "redis_socket_connect_timeout": 2.0,
}

_STATES = {
    "PENDING": "queued",
    "RECEIVED": "queued",
    "STARTED": "started",
    PROGRESS_STATE: "started",
    "RETRY": "retrying",
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "REVOKED": "cancelled",
}


@dataclass(frozen=True)
class JobStatus:
    """Where a job stands: queued, started, retrying, succeeded, failed, cancelled, or unknown (never submitted)."""

    id: str
    state: str
    percent: float
    error: str | None = None
    error_type: str | None = None  # the worker's exception class, e.g. "AudioDecodeError"
    # While it runs: the end of the text decoded so far (it grows a decode pass at a time),
    # starting at character ``text_offset`` of the job's text.
    text: str = ""
    text_offset: int = 0

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled", "unknown")


class Job:
    """A handle on a submitted job; cheap to create from an id alone."""

    def __init__(self, job_id: str, app: Celery, records: JobRecords, name: str = "", reused: bool = False) -> None:
        self.id = job_id
        self.name = name or job_id
        self.reused = reused  # an idempotency key named this job: nothing new was queued
        self._records = records
        self._result = AsyncResult(job_id, app=app)

    def status(self) -> JobStatus:
        """The job's state and percent of its audio done, read from the result backend."""
        state = self._result.state
        info = self._result.info
        error_type = type(info).__name__ if state == "FAILURE" and isinstance(info, BaseException) else None
        name = _STATES.get(state, state.lower())
        if name not in ("succeeded", "failed", "cancelled"):
            name = self._pending_state(name)
        partial = partial_text(info) if state == PROGRESS_STATE else PartialText()
        status = JobStatus(self.id, name, _percent(state, info), _error(state, info), error_type)
        return replace(status, text=partial.text, text_offset=partial.offset)

    def _pending_state(self, state: str) -> str:
        # The backend says PENDING for an id nobody submitted, and keeps "queued" for a
        # cancelled job until a worker draws and drops it.
        try:
            cancelled, submitted = self._records.standing(self.id)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailableError(f"cannot read job {self.id} from the broker ({type(exc).__name__})") from exc
        if cancelled:
            return "cancelled"
        return "unknown" if state == "queued" and not submitted else state

    def queue(self) -> str:
        """The queue the job was sent to ("" when it is unknown)."""
        submitted = self._records.get(self.id)
        return submitted.queue if submitted is not None else ""

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the result; raise JobFailedError with the worker's message on failure.

        An id nobody submitted raises JobNotFoundError at once, a cancelled job JobFailedError.
        """
        first = self.status()
        if first.state == "unknown":
            raise JobNotFoundError(f"no job {self.id} (never submitted, or its records expired)")
        if first.state == "cancelled":
            raise JobFailedError(f"job {self.id} was cancelled")
        try:
            self._result.get(timeout=timeout, propagate=False, interval=0.1)
        except CeleryTimeout as exc:
            raise JobTimeoutError(f"job {self.id} did not finish within {timeout} s") from exc
        status = self.status()
        if status.state != "succeeded":
            raise JobFailedError(status.error or f"job {self.id} {status.state}")
        return dict(self._result.result)

    def cancel(self) -> None:
        """Cancel the job: a queued job never runs, a running one stops before its next part.

        The mark is kept in Redis (``result_expires``), so workers that start later honour it too.
        """
        self._records.cancel(self.id)
        self._result.revoke()  # live workers drop it from their prefetched jobs at once

    def forget(self) -> None:
        self._result.forget()


class Client:
    """Publishes jobs to the farm's queues; one per producer process is enough."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.app = Celery("whisperfarm-client")
        self.app.conf.update(celery_config(self.settings) | _FAIL_FAST)
        self._broker_seen_at = float("-inf")
        self.records = JobRecords(RedisSettings.from_settings(self.settings), self.settings.result_expires)

    def submit(
        self,
        source: str | Path | bytes,
        *,
        queue: str | None = None,
        output: str | None = None,
        formats: Iterable[str] = (),
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        name: str = "",
        **options: Any,
    ) -> Job:
        """Queue ``source`` (a path, an ``s3://`` URI, or small raw bytes) for transcription.

        ``output`` (``s3://bucket/prefix`` or a directory the workers share) receives
        ``<job id>.<format>`` for each of ``formats``; ``callback_url`` gets a signed POST
        when the job succeeds or fails (see ``farm.io.webhooks``). With ``upload_to_staging``
        a local file is uploaded to ``staging_bucket`` first. An ``idempotency_key`` used
        again within ``result_expires`` returns the job it first created (``Job.reused``)
        and queues nothing. ``name`` is what logs and errors call the job (default: the
        file name; raw bytes have none).
        """
        parse_options(options, TranscribeOptions())  # fail here, not on a worker
        formats = (formats,) if isinstance(formats, str) else tuple(formats)
        delivery = parse_delivery(Delivery(output or "", formats, callback_url or "").fields())
        self._check_broker()
        job_id = str(uuid.uuid4())
        existing = self._claim(idempotency_key, job_id)
        if existing is not None:
            return Job(existing, self.app, self.records, reused=True)
        try:
            message = self._message(source, options, delivery, name)
            return self._send(job_id, message, queue or SHARED_QUEUE)
        except BaseException:
            if idempotency_key:
                self._quietly(lambda: self.records.release(idempotency_key, job_id))
            raise

    def _send(self, job_id: str, message: dict[str, Any], queue: str) -> Job:
        try:
            self.records.add(job_id, queue)  # first: a worker may finish the job before send_task returns
            # argsrepr is what logs and Flower show of the job: its name, not its options
            # (which may hold a callback URL); Celery's repr of the message also cost more
            # than the rest of submit().
            self.app.send_task(
                TRANSCRIBE_TASK, args=[message], queue=queue, task_id=job_id, argsrepr=repr(message["name"])
            )
        except (OperationalError, OSError, RuntimeError, RedisError) as exc:
            self._quietly(lambda: self.records.remove(job_id))
            # The message does not repeat the error text: it may quote the URL's password.
            url = _safe_url(self.settings.broker_url)
            raise BrokerUnavailableError(f"cannot reach the broker at {url} ({type(exc).__name__})") from exc
        return Job(job_id, self.app, self.records, message["name"])

    def _claim(self, idempotency_key: str | None, job_id: str) -> str | None:
        if not idempotency_key:
            return None
        try:
            return self.records.claim(idempotency_key, job_id)
        except (RedisError, OSError) as exc:
            url = _safe_url(self.settings.broker_url)
            raise BrokerUnavailableError(f"cannot reach the broker at {url} ({type(exc).__name__})") from exc

    @staticmethod
    def _quietly(undo: Callable[[], None]) -> None:
        with contextlib.suppress(RedisError, OSError):  # Redis failed: the records expire anyway
            undo()

    def _check_broker(self) -> None:
        # Celery would retry a dead or refusing Redis for ~20 s before giving up; one
        # PING every few seconds lets a producer hear at once instead.
        now = time.monotonic()
        if now - self._broker_seen_at < BROKER_CHECK_INTERVAL_S:
            return
        if not reachable(RedisSettings.from_settings(self.settings), timeout_s=2.0):
            url = _safe_url(self.settings.broker_url)
            raise BrokerUnavailableError(f"cannot reach the broker at {url} (down, or the password is wrong)")
        self._broker_seen_at = now

    def submit_many(self, sources: Iterable[str | Path | bytes], **options: Any) -> list[Job]:
        return [self.submit(source, **options) for source in sources]

    def job(self, job_id: str) -> Job:
        return Job(job_id, self.app, self.records)

    def wait_all(self, jobs: list[Job], timeout: float | None = None) -> list[JobStatus]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            statuses = [job.status() for job in jobs]
            if all(s.done for s in statuses) or (deadline is not None and time.monotonic() > deadline):
                return statuses
            time.sleep(0.2)

    def workers(self, timeout: float = 1.0, limit: int | None = None) -> list[str]:
        """Node names of the workers that answered a ping (stop waiting after ``limit`` replies)."""
        replies = self.app.control.ping(timeout=timeout, limit=limit) or []
        return sorted(name for reply in replies for name in reply)

    def close(self) -> None:
        self.app.close()

    def presigned_urls(self, result: Mapping[str, Any], expires_s: int | None = None) -> dict[str, str]:
        """HTTP(S) URLs for a result's S3 outputs, by format, valid ``presign_expires_s``."""
        expires = expires_s or self.settings.presign_expires_s
        return presigned_urls(result.get("outputs", {}), s3_config(self.settings), expires)

    def _message(
        self, source: str | Path | bytes, options: dict[str, Any], delivery: Delivery, name: str = ""
    ) -> dict[str, Any]:
        if isinstance(source, bytes):
            if len(source) > self.settings.inline_audio_limit:
                raise InvalidJobError(
                    f"{len(source)} bytes is over inline_audio_limit ({self.settings.inline_audio_limit}); "
                    "pass a path or s3:// URI"
                )
            return job_message("", options, inline_audio=source, name=name or "inline audio", delivery=delivery)
        reference = str(source)
        if "://" not in reference:
            path = local_file(reference)  # a symlink loop or an unreadable directory: one typed line
            reference = self._staged(path) if self.settings.upload_to_staging else str(path)
        return job_message(reference, options, name=name, delivery=delivery)

    def _staged(self, path: Path) -> str:
        # Workers elsewhere cannot open this host's paths: hand them an S3 copy instead.
        uri = staging_uri(self.settings.staging_bucket, path.name)
        S3Storage(s3_config(self.settings)).upload_file(path, uri)
        return uri


def _percent(state: str, info: Any) -> float:
    if state == "SUCCESS":
        return 100.0
    if isinstance(info, dict):
        return float(info.get("percent", 0.0))
    return 0.0


def _error(state: str, info: Any) -> str | None:
    if state != "FAILURE":
        return None
    if type(info).__name__ == "TimeLimitExceeded":
        return f"killed: the job ran longer than time_limit ({info.args[0] if info.args else '?'} s)"
    return str(info) if info is not None else "the job failed"


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def submit(source: str | Path | bytes, **options: Any) -> Job:
    """Submit with the process's settings; see ``Client.submit``."""
    return Client().submit(source, **options)
