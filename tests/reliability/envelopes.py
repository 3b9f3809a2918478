"""Task envelopes for the poison-message tests: the real one the client sends, broken ones, and a fuzzer."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import replace
from functools import cache, partial
from typing import Any

import redis
from hypothesis import strategies as st

from farm.constants import SHARED_QUEUE, TRANSCRIBE_TASK
from farm.serve.redis_server import start_redis

DELETE = object()  # a field the fuzzer leaves out


@cache
def real_envelope() -> dict[str, Any]:
    """What ``Client.submit`` puts on the queue for a job (sent to a private Redis, popped back)."""
    from farm.client import Client
    from farm.config import load_settings

    server = start_redis()
    try:
        settings = replace(load_settings(), broker_url=server.url, result_backend=server.url)
        client = Client(settings)
        client.app.send_task(TRANSCRIBE_TASK, args=[{"audio": "/nowhere.wav"}], queue=SHARED_QUEUE)
        item = redis.Redis.from_url(server.url).rpop(SHARED_QUEUE)
        client.close()
    finally:
        server.stop()
    assert isinstance(item, bytes)
    envelope: dict[str, Any] = json.loads(item)
    return envelope


def envelope(**changes: Any) -> dict[str, Any]:
    """The real envelope with ``changes`` at dotted paths (``"headers.timelimit"``) applied."""
    result = copy.deepcopy(real_envelope())
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = result
        for key in parents:
            node = node[key]
        node[last] = value
    return result


def body_of(args: Any, kwargs: Any = None, embed: Any = None) -> str:
    raw = json.dumps([args, kwargs if kwargs is not None else {}, embed])
    return base64.b64encode(raw.encode()).decode()


# The four envelopes of issue 16 that each stopped a worker process (and the farm, by repetition).
POISON = {
    "timelimit_text": {"headers.timelimit": "soon"},
    "delivery_tag_dict": {"properties.delivery_tag": {"a": 1}},
    "body_encoding_rot13": {"properties.body_encoding": "rot13"},
    "headers_text": {"headers": "just a string"},
}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


# Values that have broken kombu or Celery, or look as if they might.
TRICKY = ("soon", {"a": 1}, "rot13", "", [], [1], [1, 2, 3], ["a", "b"], [-1, None], -1, 1e300, True, "../../x",
          "2020-13-45T00:00:00", "9999-12-31T23:59:59", "zlib", "application/x-python-serialize")  # fmt: skip
EXTRA_PATHS = ("headers.compression", "headers.shadow", "headers.eta", "properties.priority", "body")


def _paths(node: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in node.items():
        paths.append(prefix + key)
        if isinstance(value, dict):
            paths += _paths(value, f"{prefix}{key}.")
    return paths


def _mutated(real: dict[str, Any], changes: list[tuple[str, Any]], body: Any) -> dict[str, Any]:
    result = copy.deepcopy(real)
    if body is not DELETE:
        result["body"] = body
    for path, value in changes:
        *parents, last = path.split(".")
        node: Any = result
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None) if value is DELETE else node.__setitem__(last, value)
    return result


def _bodies() -> st.SearchStrategy[Any]:
    args = st.one_of(st.just([{"audio": "/nowhere.wav"}]), st.lists(JSON, max_size=2), JSON)
    embed = st.one_of(st.none(), st.just({"callbacks": None, "chord": None}), JSON)
    built = st.builds(body_of, args, st.one_of(st.just({}), JSON), embed)
    return st.one_of(st.just(DELETE), st.just(DELETE), built, st.text(max_size=20), JSON)


def fuzzed_envelopes() -> st.SearchStrategy[dict[str, Any]]:
    """The real envelope with one to three fields dropped or replaced (any JSON, or a known troublemaker)."""
    real = real_envelope()
    value = st.one_of(st.just(DELETE), JSON, st.sampled_from(TRICKY))
    change = st.tuples(st.sampled_from([*_paths(real), *EXTRA_PATHS]), value)
    return st.builds(partial(_mutated, real), st.lists(change, min_size=1, max_size=3), _bodies())


def fuzzed_items() -> st.SearchStrategy[bytes]:
    """Whole queue items: mostly fuzzed envelopes, sometimes any JSON or any bytes."""
    as_json = st.one_of(fuzzed_envelopes(), fuzzed_envelopes(), fuzzed_envelopes(), JSON)
    return st.one_of(as_json.map(lambda value: json.dumps(value).encode()), st.binary(max_size=40))
