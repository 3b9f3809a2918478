"""Farm-wide Prometheus metrics, kept in Redis.

Workers run as many processes on many hosts (and prefork children come and go), so
each records into the broker's Redis with a few ``HINCRBY`` commands per job and any
process serves the totals: ``farm api`` at ``/metrics`` and ``farm metrics`` on
``metrics_port``. Queue depths are read from the broker at scrape time. Recording never
fails a job. A job's end is counted once per job id (``Recorder.record_once``), waiting
out a Redis restart; other data points (model loads) may be lost to a Redis hiccup.

Only the serving side needs ``prometheus_client`` (the ``api`` extra); workers do not.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from farm.constants import COUNTED_KEY, METRICS_KEY_PREFIX, SHARED_QUEUE
from farm.queue.connections import RedisSettings, shared_redis

if TYPE_CHECKING:
    from farm.config import Settings

log = logging.getLogger(__name__)

COUNTED_TTL_S = 7 * 86_400
# Waits between tries to count a job's end while Redis is away (about a minute in all).
RECORD_RETRY_DELAYS_S = (0.5, 1, 2, 4, 8, 10, 10, 10, 10)

KEY_PREFIX = METRICS_KEY_PREFIX
# kombu's Redis transport keeps each exchange's bindings in a set under this prefix;
# every queue a worker ever consumed from has one, so queue depth needs no queue list.
KOMBU_BINDING_PREFIX = "_kombu.binding."
KOMBU_SEPARATOR = "\x06\x16"


@dataclass(frozen=True)
class Metric:
    name: str  # without "_total": prometheus_client adds it to counters
    help: str
    kind: str  # "counter" or "histogram"
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


JOBS = Metric("farm_jobs", "Jobs that ended, by final state", "counter", ("state",))
AUDIO_SECONDS = Metric("farm_audio_seconds", "Seconds of audio transcribed", "counter")
ERRORS = Metric("farm_job_errors", "Failed jobs by error type", "counter", ("type",))
SPEED = Metric(
    "farm_job_speed_xrt",
    "Audio seconds transcribed per wall second, per job (x real time)",
    "histogram",
    buckets=(0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500),
)
MODEL_LOAD = Metric(
    "farm_model_load_seconds",
    "Seconds a worker process took to load its model",
    "histogram",
    ("engine", "model"),
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
RECORDED = (JOBS, AUDIO_SECONDS, ERRORS, SPEED, MODEL_LOAD)


# One metric update, applied to a Redis pipeline; updates of one job travel together.
Update = Callable[[Any], None]


def counted(metric: Metric, amount: float = 1, **labels: str) -> Update:
    return lambda pipe: pipe.hincrbyfloat(_key(metric), _labels(metric, labels), amount)


def observed(metric: Metric, value: float, **labels: str) -> Update:
    field = _labels(metric, labels)
    bucket = float(next((b for b in metric.buckets if value <= b), float("inf")))

    def add(pipe: Any) -> None:
        pipe.hincrbyfloat(_key(metric), f"{field}|sum", value)
        pipe.hincrby(_key(metric), f"{field}|count", 1)
        pipe.hincrby(_key(metric), f"{field}|le={bucket}", 1)

    return add


class Recorder:
    """Adds to the farm's metrics in Redis; every method swallows Redis errors."""

    def __init__(self, where: RedisSettings) -> None:
        self.where = where

    def count(self, metric: Metric, amount: float = 1, **labels: str) -> None:
        self.record(counted(metric, amount, **labels))

    def observe(self, metric: Metric, value: float, **labels: str) -> None:
        self.record(observed(metric, value, **labels))

    def record(self, *updates: Update) -> None:
        """Apply ``updates`` in one round trip (a job's end is on every job's critical path)."""
        if not updates:
            return
        try:
            pipe = shared_redis(self.where).pipeline(transaction=False)
            for update in updates:
                update(pipe)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("could not record a metric: %s", exc)

    def record_once(self, job_id: str, *updates: Update, expire_s: int = COUNTED_TTL_S) -> bool:
        """Apply a job's end ``updates`` unless they were applied for ``job_id`` before; True if now.

        The mark and the counts go in one transaction, and a Redis that is away (restarting)
        is waited for (about a minute, like the result itself), so a job that ends is counted
        exactly once: never lost to a restart, never twice when it is redelivered and run again.
        """
        for delay in (*RECORD_RETRY_DELAYS_S, None):
            try:
                return _record_once(shared_redis(self.where), job_id, updates, expire_s)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                if delay is None:
                    log.warning("could not record the end of job %s: %s", job_id, exc)
                    return False
                time.sleep(delay)
        return False


def _record_once(client: redis.Redis, job_id: str, updates: tuple[Update, ...], expire_s: int) -> bool:
    key = COUNTED_KEY.format(job_id=job_id)
    with client.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(key)  # type: ignore[no-untyped-call]
            if pipe.exists(key):
                return False
            pipe.multi()
            pipe.set(key, 1, ex=expire_s)
            for update in updates:
                update(pipe)
            pipe.execute()
            return True
        except redis.WatchError:
            return False  # another process counted it meanwhile


def recorder(settings: Settings) -> Recorder:
    return Recorder(RedisSettings.from_settings(settings))


def audio_updates(result: Mapping[str, Any]) -> list[Update]:
    """A transcription's audio seconds and speed (a whole job or one part of one)."""
    audio_s = float(result.get("duration", 0.0))
    wall_s = float(result.get("timings", {}).get("total_s", 0.0))
    speed = [observed(SPEED, audio_s / wall_s)] if wall_s > 0 else []
    return [counted(AUDIO_SECONDS, audio_s), *speed]


def success_update() -> Update:
    return counted(JOBS, state="succeeded")


def failure_updates(error: BaseException) -> list[Update]:
    return [counted(JOBS, state="failed"), counted(ERRORS, type=type(error).__name__)]


def record_model_load(settings: Settings, seconds: float) -> None:
    recorder(settings).observe(MODEL_LOAD, seconds, engine=settings.engine, model=settings.model)


def _key(metric: Metric) -> str:
    return KEY_PREFIX + metric.name


def _labels(metric: Metric, labels: Mapping[str, str]) -> str:
    # A JSON list in label order: a hash field that survives any character in a value.
    return json.dumps([str(labels.get(name, "")) for name in metric.labels])


# --- serving ---------------------------------------------------------------------


class FarmCollector:
    """A prometheus_client collector that reads the farm's totals from Redis per scrape."""

    def __init__(self, where: RedisSettings) -> None:
        self.where = where

    def collect(self) -> Iterator[Any]:
        client = shared_redis(self.where)
        try:
            yield from (_family(metric, client.hgetall(_key(metric))) for metric in RECORDED)
            yield _queue_depths(client)
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics unavailable: %s", exc)

    def describe(self) -> Iterable[Any]:
        return []  # no fixed description: the registry then never scrapes at register time


def _family(metric: Metric, raw: Mapping[Any, Any]) -> Any:
    values = {_text(field): float(value) for field, value in raw.items()}
    if metric.kind == "counter":
        return _counter(metric, values)
    return _histogram(metric, values)


def _counter(metric: Metric, values: Mapping[str, float]) -> Any:
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily(metric.name, metric.help, labels=metric.labels)
    for field, value in sorted(values.items()):
        family.add_metric(json.loads(field), value)
    return family


def _histogram(metric: Metric, values: Mapping[str, float]) -> Any:
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
    for series in sorted({field.split("|", 1)[0] for field in values}):
        cumulative, buckets = 0.0, []
        for bound in (*metric.buckets, float("inf")):
            cumulative += values.get(f"{series}|le={float(bound)}", 0.0)
            buckets.append(("+Inf" if bound == float("inf") else str(float(bound)), cumulative))
        family.add_metric(json.loads(series), buckets, values.get(f"{series}|sum", 0.0))
    return family


def _queue_depths(client: redis.Redis) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily("farm_queue_depth", "Jobs waiting in each farm queue", labels=("queue",))
    for queue in sorted(farm_queues(client)):
        family.add_metric([queue], float(client.llen(queue)))
    return family


def farm_queues(client: redis.Redis) -> set[str]:
    """The farm's queues (shared, farm.cpu, farm.gpuN) that any worker has declared."""
    queues = {SHARED_QUEUE}
    for key in client.scan_iter(match=f"{KOMBU_BINDING_PREFIX}{SHARED_QUEUE}*", count=500):
        for member in client.smembers(key):
            queue = _text(member).rsplit(KOMBU_SEPARATOR, 1)[-1]
            if queue == SHARED_QUEUE or queue.startswith(SHARED_QUEUE + "."):
                queues.add(queue)
    return queues


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def registry(settings: Settings) -> Any:
    from prometheus_client import CollectorRegistry

    farm_registry = CollectorRegistry(auto_describe=False)
    farm_registry.register(FarmCollector(RedisSettings.from_settings(settings)))
    return farm_registry


def exposition(settings: Settings) -> tuple[bytes, str]:
    """The metrics in Prometheus' text format and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry(settings)), CONTENT_TYPE_LATEST


def serve(settings: Settings, stop: threading.Event | None = None) -> None:
    """Serve ``/metrics`` on ``api_host:metrics_port`` until ``stop`` is set (forever by default).

    With an ``api_token`` set, scrapes must send it as a bearer token, as for the API's /metrics.
    """
    from prometheus_client import make_wsgi_app

    from farm.io.metrics_server import start, with_token

    app = with_token(make_wsgi_app(registry(settings)), settings.api_token)
    server, thread = start(app, settings.api_host, settings.metrics_port)
    log.info("metrics on %s:%d", settings.api_host, settings.metrics_port)
    try:
        while not (stop and stop.is_set()):
            time.sleep(0.5)
    finally:
        server.shutdown()
        thread.join()
