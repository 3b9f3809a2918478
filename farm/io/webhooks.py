"""Tell a job's submitter that it ended: a signed POST to its ``callback_url``.

The body is JSON; ``X-Farm-Signature: t=<unix time>,sha256=<hex>`` is an HMAC-SHA256
of ``"<t>." + body`` under ``webhook_secret``, so a receiver can check both who sent it
and that it is fresh (``verify_signature``). ``X-Farm-Delivery`` stays the same across
retries, so a receiver can drop duplicates. Failed attempts (connection errors, 408,
429, 5xx) are retried with doubling backoff; other 4xx answers are final. Workers hand
webhooks to the durable outbox (``farm.io.outbox``), which signs each attempt afresh.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypedDict

from farm.job.result import Result

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Farm-Signature"
EVENT_HEADER = "X-Farm-Event"
DELIVERY_HEADER = "X-Farm-Delivery"
USER_AGENT = "whisperfarm-webhook/1"
TIMEOUT_S = 10.0
MAX_BACKOFF_S = 60.0
_RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Webhook:
    url: str
    body: bytes
    headers: dict[str, str]


class _EventFields(TypedDict):
    id: str
    event: str  # "job.succeeded" or "job.failed"
    status: str
    created: int  # unix time


class JobEvent(_EventFields, total=False):
    result: Result  # a job that succeeded
    error: str  # a job that failed: why


def job_event(job_id: str, state: str, result: Result | None = None, error: str = "") -> JobEvent:
    """The JSON body for a job that ended in ``state`` ("succeeded" or "failed")."""
    event: JobEvent = {"id": job_id, "event": f"job.{state}", "status": state, "created": int(time.time())}
    if result is not None:
        event["result"] = result
    if error:
        event["error"] = error
    return event


def build(url: str, event: Mapping[str, object], secret: str, now: float | None = None) -> Webhook:
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: str(event.get("event", "")),
        DELIVERY_HEADER: uuid.uuid4().hex,
    }
    return signed(Webhook(url, body, headers), secret, now)


def signed(webhook: Webhook, secret: str, now: float | None = None) -> Webhook:
    """``webhook`` with a signature made now (receivers refuse old ones); unsigned without a secret."""
    if not secret:
        return webhook
    signature = sign(secret, webhook.body, int(time.time() if now is None else now))
    return replace(webhook, headers=webhook.headers | {SIGNATURE_HEADER: signature})


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},sha256={digest}"


def verify_signature(secret: str, body: bytes, header: str, tolerance_s: float = 300.0) -> bool:
    """True when ``header`` signs ``body`` under ``secret`` and is at most ``tolerance_s`` old."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    fresh = abs(time.time() - timestamp) <= tolerance_s
    return fresh and hmac.compare_digest(sign(secret, body, timestamp), header.strip())


def deliver(
    webhook: Webhook, max_attempts: int, sleep: Callable[[float], None] = time.sleep, first_backoff_s: float = 1.0
) -> bool:
    """POST until the receiver accepts (2xx), refuses for good, or attempts run out."""
    for tries in range(1, max_attempts + 1):
        outcome = attempt(webhook)
        if outcome is True:
            return True
        if outcome is False or tries == max_attempts:
            break
        sleep(min(MAX_BACKOFF_S, first_backoff_s * 2 ** (tries - 1)))
    log.warning("webhook to %s not delivered after %d attempt(s)", host(webhook.url), tries)
    return False


def attempt(webhook: Webhook) -> bool | None:
    """True: delivered; False: refused for good; None: worth another try."""
    request = urllib.request.Request(webhook.url, data=webhook.body, headers=webhook.headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # http(s) only: checked at submit
            return 200 <= int(response.status) < 300
    except urllib.error.HTTPError as exc:
        retry = exc.code >= 500 or exc.code in _RETRY_STATUSES
        log.info("webhook to %s answered %d%s", host(webhook.url), exc.code, "; retrying" if retry else "")
        return None if retry else False
    except (urllib.error.URLError, OSError) as exc:
        log.info("webhook to %s failed: %s; retrying", host(webhook.url), exc)
        return None


def host(url: str) -> str:
    # The query string may carry a receiver's token: log the host only.
    return urllib.parse.urlsplit(url).netloc
