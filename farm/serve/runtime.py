"""Build a worker process's runtime once: settings -> model location -> loaded engine."""

from __future__ import annotations

import logging
import threading
import time
from functools import cache

from farm.config import Settings, get_settings
from farm.inference.batching import Batcher, BatchPolicy, Direct
from farm.inference.engines import load_engine
from farm.inference.engines.base import Engine, EngineConfig, TranscribeOptions
from farm.inference.pipeline import FanoutPolicy, Runtime, Transcriber
from farm.inference.weights.models import resolve_model
from farm.io.from_settings import job_end_hooks, roots_from, s3_config
from farm.io.job_end import JobEndHooks
from farm.io.metrics import record_model_load
from farm.serve.devices import auto_batch_size, gpu_inventory, this_device

log = logging.getLogger(__name__)
_lock = threading.Lock()
_runtime: list[Runtime] = []


def engine_config(settings: Settings) -> EngineConfig:
    model = resolve_model(settings.model, settings.engine, settings.models_dir)
    return EngineConfig(
        model=model,
        device=settings.device,
        compute_type=_compute_type(settings),
        cpu_threads=settings.cpu_threads,
    )


def _compute_type(settings: Settings) -> str:
    # CTranslate2's "auto" picks the fastest type the hardware supports (int8 on CPU).
    if settings.compute_type == "default" and settings.engine == "ctranslate2":
        return "auto"
    return settings.compute_type


def default_options(settings: Settings) -> TranscribeOptions:
    return TranscribeOptions(language=settings.language or None, task=settings.task, beam_size=settings.beam_size)  # type: ignore[arg-type]


def build_runtime(settings: Settings) -> Runtime:
    threaded = settings.pool == "threads"
    engine = load_engine(settings.engine, engine_config(settings))
    return Runtime(
        transcriber=_transcriber(settings, engine),
        engine_name=settings.engine,
        model=settings.model,
        defaults=default_options(settings),
        inline_limit=settings.inline_audio_limit,
        s3=s3_config(settings),
        roots=roots_from(settings),
        timeout_s=float(settings.soft_time_limit) if threaded else None,
        fanout=_fanout(settings),
        multilingual=engine.multilingual,
    )


def _fanout(settings: Settings) -> FanoutPolicy | None:
    if not settings.fanout_above_s:
        return None
    return FanoutPolicy(above_s=float(settings.fanout_above_s), part_s=float(settings.fanout_part_s))


def _transcriber(settings: Settings, engine: Engine) -> Transcriber:
    if settings.pool != "threads":
        return Direct(engine)
    return Batcher(engine, batch_policy(settings), multilingual=engine.multilingual)


def batch_policy(settings: Settings) -> BatchPolicy:
    return BatchPolicy(
        max_jobs=settings.concurrency,
        batch_size=settings.batch_size or _auto_batch_size(settings),
        wait_s=settings.batch_wait_ms / 1000,
        pack=settings.pack,
        max_batch_audio_s=settings.max_batch_audio_s,
    )


def _auto_batch_size(settings: Settings) -> int:
    # started without `farm worker` (which resolves 0 for its children): size for this device
    device = this_device(settings.device)
    return auto_batch_size(device, settings.model, gpu_inventory(), settings.beam_size)


def worker_settings() -> Settings:
    """The settings this worker process runs with (read and validated once, on first use)."""
    return get_settings()


@cache
def get_job_end() -> JobEndHooks:
    """This process's job-end hooks (result files, once-only guard, metrics, webhook)."""
    return job_end_hooks(worker_settings())


def get_runtime() -> Runtime:
    """This process's runtime; the model loads on the first call and never again."""
    with _lock:  # job threads may ask at once; only one may load the model
        if not _runtime:
            _runtime.append(_timed_build(worker_settings()))
        return _runtime[0]


def _timed_build(settings: Settings) -> Runtime:
    started = time.perf_counter()
    runtime = build_runtime(settings)
    record_model_load(settings, time.perf_counter() - started)
    log.info("runtime: %s", banner(settings))
    return runtime


def banner(settings: Settings) -> str:
    """What this worker process runs with, for its start log (the values the batcher really uses)."""
    policy = batch_policy(settings)
    shape = f"gathers up to {policy.max_jobs} jobs, {policy.batch_size} windows per call, pack {policy.pack}"
    batcher = shape if settings.pool == "threads" else f"one job per {settings.pool} child"
    return f"{settings.engine} {settings.model} on {settings.device}, {batcher}"
