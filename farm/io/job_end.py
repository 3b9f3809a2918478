"""What happens once a job ends, as hooks run in order (dramatiq's ``after_process_message``).

The tasks hand every end, a result or a failure for good, to one ``JobEndHooks``; each
hook does one thing: write the result files, count the end, decide whether this is the
job's first announced end, call back. A new effect is one more hook, not an edit to each
task. Parts of a fanned-out file pass through too: they are counted, never announced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import redis

from farm.constants import ENDED_KEY
from farm.io.delivery import DEFAULT_FORMATS, write_outputs
from farm.io.metrics import Recorder, Update, audio_updates, failure_updates, success_update
from farm.io.outbox import Outbox
from farm.io.roots import Roots
from farm.io.storage import S3Config
from farm.io.webhooks import JobEvent, build, job_event
from farm.io.webhooks import Webhook as HttpCall
from farm.job.result import Result
from farm.job.spec import Delivery
from farm.queue.connections import RedisSettings, shared_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobEnd:
    """One job's end as every hook sees it: exactly one of ``result`` and ``error`` is set."""

    job_id: str  # a part's failure is the whole job's: the parent's id
    delivery: Delivery
    result: Result | None = None
    error: BaseException | None = None
    part: bool = False  # a part of a fanned-out file that succeeded: counted, not announced
    first: bool = False  # no end of this job was announced before (set by OnceOnly)


class Hook:
    """One effect at the end of a job; it may hand the next hooks a changed end."""

    def after_job(self, end: JobEnd) -> JobEnd:
        return end


class JobEndHooks:
    """The hooks a worker runs, in order, for each job that ends."""

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self.hooks = tuple(hooks)

    def after_job(self, end: JobEnd) -> JobEnd:
        for hook in self.hooks:
            end = hook.after_job(end)
        return end


@dataclass(frozen=True)
class ResultFiles(Hook):
    """``<output>/<job id>.<format>`` for each format; the result lists them under "outputs"."""

    s3: S3Config
    roots: Roots
    output_uri: str  # where a job that asks for formats but names no output gets them

    def after_job(self, end: JobEnd) -> JobEnd:
        if end.result is None or end.part:
            return end
        delivery = end.delivery
        destination = delivery.output or (self.output_uri if delivery.formats else "")
        if not destination:
            return end
        formats = delivery.formats or DEFAULT_FORMATS
        outputs = write_outputs(end.result, end.job_id, destination, formats, self.s3, self.roots)
        return replace(end, result=end.result | {"outputs": outputs})


@dataclass(frozen=True)
class OnceOnly(Hook):
    """Marks a job's first announced end and, in the same Redis call, queues its webhook in
    the durable outbox: a redelivered job or a second failing part is not announced again,
    and a worker killed between the mark and the webhook cannot leave a job marked but
    never called back."""

    where: RedisSettings
    ttl_s: int
    outbox: Outbox | None = None
    signed: bool = False  # the outbox keeps no secret: whichever process sends it signs it afresh

    def after_job(self, end: JobEnd) -> JobEnd:
        if end.part:
            return end
        webhook = build(end.delivery.callback_url, _event(end), "") if end.delivery.callback_url else None
        return replace(end, first=self.first(end.job_id, webhook))

    def first(self, job_id: str, webhook: HttpCall | None = None) -> bool:
        if not job_id:
            self._put(webhook)
            return True
        key = ENDED_KEY.format(job_id=job_id)
        try:
            if webhook is not None and self.outbox is not None:
                return self.outbox.put_first(key, self.ttl_s, webhook, self.signed)
            return bool(shared_redis(self.where).set(key, 1, nx=True, ex=self.ttl_s))
        except (redis.RedisError, OSError) as exc:
            log.warning("cannot check whether job %s was announced: %s", job_id, exc)
        self._put(webhook)  # announced, as before the guard could tell; the outbox write may raise
        return True

    def _put(self, webhook: HttpCall | None) -> None:
        if webhook is not None and self.outbox is not None:
            self.outbox.put(webhook, signed=self.signed)


@dataclass(frozen=True)
class Metrics(Hook):
    """Audio seconds and speed for every transcription, jobs and errors: once per job (or part) id."""

    recorder: Recorder

    def after_job(self, end: JobEnd) -> JobEnd:
        self.recorder.record_once(end.job_id, *_updates(end))  # through Redis restarts, never twice
        return end


def _updates(end: JobEnd) -> list[Update]:
    if end.error is not None:
        return failure_updates(end.error)
    assert end.result is not None
    # A merged result's audio was counted part by part; a part is not a job.
    audio = audio_updates(end.result) if "parts" not in end.result else []
    return audio if end.part else [*audio, success_update()]


def _event(end: JobEnd) -> JobEvent:
    if end.error is not None:
        return job_event(end.job_id, "failed", error=str(end.error) or type(end.error).__name__)
    return job_event(end.job_id, "succeeded", result=end.result)
