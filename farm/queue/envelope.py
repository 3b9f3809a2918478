"""What an item on a farm queue must be before kombu and Celery are let near it.

kombu's Redis transport and Celery's worker read an envelope's fields without checking
their types: a string where Celery expects two time limits, a dict as a delivery tag, an
unknown body encoding or a string as the headers raises inside the consumer loop and
stops the worker process; kombu then hands the same item to the next process, and the
farm crash-loops. Anyone who can reach Redis can push such an item, so every field they
read is checked here first. The fields are those kombu 5.7 and Celery 5.7 read for task
protocol 2 (``kombu/transport/virtual/base.py`` Message, ``celery/worker/request.py``
Request, ``celery/worker/strategy.py``, ``celery/app/trace.py``).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kombu.utils.json import loads as kombu_loads

from farm.job.ids import SAFE_JOB_ID, is_safe_job_id

Check = Callable[[Any], bool]


class UnreadableEnvelopeError(Exception):
    """An item on a queue list that kombu or Celery cannot read as a task message."""


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _tag(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 256


def _optional(check: Check) -> Check:
    return lambda value: value is None or check(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def _seconds(value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value) and 0 <= value < 2**31


def _time_limits(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2 and all(v is None or _seconds(v) for v in value)


def _iso_time(value: Any) -> bool:
    try:
        return value is None or (isinstance(value, str) and bool(datetime.fromisoformat(value)))
    except ValueError:
        return False


def _one_of(*allowed: str) -> Check:
    return lambda value: isinstance(value, str) and value.lower() in allowed


def _flag(value: Any) -> bool:
    return value is None or isinstance(value, bool)


def _list_of(check: Check) -> Check:
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


def _is(kind: type) -> Check:
    return lambda value: isinstance(value, kind)


ENVELOPE: dict[str, Check] = {
    "body": _text,
    "content-type": _one_of("application/json"),  # the farm reads JSON only: pickle could run code
    "content-encoding": _one_of("utf-8"),
    "headers": _is(dict),
    "properties": _is(dict),
}
PROPERTIES: dict[str, Check] = {
    "delivery_tag": _tag,  # a hash field in Redis and a dict key in the worker
    "body_encoding": _optional(_one_of("base64", "utf-8")),  # the only codecs kombu has
    "delivery_info": _is(dict),
    "priority": _optional(lambda value: _count(value) and value <= 255),
    "delivery_mode": _optional(_count),
    "reply_to": _optional(_text),
    "correlation_id": _optional(_text),
}
DELIVERY_INFO: dict[str, Check] = {"exchange": _text, "routing_key": _text, "redelivered": _flag}
HEADERS: dict[str, Check] = {
    "task": _text,
    "id": is_safe_job_id,  # it names result files and Redis keys
    "lang": _optional(_text),
    "shadow": _optional(_text),
    "root_id": _optional(_text),
    "parent_id": _optional(_text),
    "group": _optional(_text),
    "group_index": _optional(_count),
    "eta": _iso_time,
    "expires": _iso_time,
    "retries": _count,
    "timelimit": _time_limits,
    "argsrepr": _optional(_text),
    "kwargsrepr": _optional(_text),
    "origin": _optional(_text),
    "ignore_result": _flag,
    "replaced_task_nesting": _count,
    "stamped_headers": _optional(_list_of(_text)),  # names looked up in a dict
    "stamps": _optional(_is(dict)),
    "redelivered": _flag,
    "compression": lambda value: value is None,  # the farm never compresses; kombu would drop it
}
EMBED: dict[str, Check] = {
    "callbacks": _optional(_is(list)),
    "errbacks": _optional(_is(list)),
    "chain": _optional(_is(list)),
    "chord": _optional(_is(dict)),
}
REQUIRED = {
    "envelope": ("body", "content-type", "headers", "properties"),
    "properties": ("delivery_tag", "delivery_info"),
    "delivery_info": ("exchange", "routing_key"),
    "headers": ("task", "id"),
}


def check_envelope(payload: Any) -> None:
    """Raise UnreadableEnvelopeError (its message says why) unless kombu and Celery can read ``payload``."""
    _check_fields("envelope", payload, ENVELOPE)
    properties = payload["properties"]
    _check_fields("properties", properties, PROPERTIES)
    _check_fields("delivery_info", properties["delivery_info"], DELIVERY_INFO)
    _check_fields("headers", payload["headers"], HEADERS)
    _check_body(decode_body(payload["body"], properties.get("body_encoding")))


def _check_fields(where: str, value: Any, fields: Mapping[str, Check]) -> None:
    if not isinstance(value, dict):
        raise UnreadableEnvelopeError(f"the {where} is a {type(value).__name__}, not an object")
    missing = [key for key in REQUIRED.get(where, ()) if key not in value]
    if missing:
        raise UnreadableEnvelopeError(f"the {where} has no {', '.join(missing)}")
    wrong = [key for key, check in fields.items() if key in value and not check(value[key])]
    if wrong:
        key = wrong[0]
        hint = f" (job ids must match {SAFE_JOB_ID.pattern})" if (where, key) == ("headers", "id") else ""
        raise UnreadableEnvelopeError(f"{where} field {key!r} cannot be {_shown(value[key])}{hint}")


def decode_body(body: str, encoding: str | None) -> Any:
    """The task's ``[args, kwargs, embed]`` as Celery will decode it (kombu's JSON, type markers and all)."""
    try:
        raw = base64.b64decode(body, validate=True) if (encoding or "").lower() == "base64" else body.encode()
        return kombu_loads(raw.decode("utf-8"))  # type: ignore[no-untyped-call]
    except Exception as exc:  # kombu's type markers raise whatever their decoder raises
        raise UnreadableEnvelopeError(f"its body is not a JSON task: {type(exc).__name__}: {exc}") from exc


def _check_body(body: Any) -> None:
    shaped = isinstance(body, list) and len(body) == 3
    if not shaped or not isinstance(body[0], list) or not isinstance(body[1], dict):
        raise UnreadableEnvelopeError("its body is not a task's [args, kwargs, embed]")
    if body[2] is not None:
        _check_fields("embed", body[2], EMBED)


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."
