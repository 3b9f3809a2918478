"""The Celery application, configured from the validated settings."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from farm.queue.broker import worker_celery_config
from farm.serve.runtime import worker_settings

log = logging.getLogger(__name__)

app = Celery("whisperfarm")
app.conf.update(worker_celery_config(worker_settings()))


@worker_process_init.connect
def _load_model_in_child(**_: Any) -> None:
    # prefork: load in each child after the fork, so no CUDA context or thread pool is shared.
    _load_model()


@worker_ready.connect
def _load_model_in_main(**_: Any) -> None:
    # threads: the jobs run in this process; load once, before the first job needs it.
    if worker_settings().pool == "threads":
        _load_model()


@worker_ready.connect
def _drain_webhooks(**_: Any) -> None:
    # Every worker sends the farm's pending webhooks: its own and those a dead worker left.
    from farm.io.from_settings import outbox
    from farm.io.outbox import Drainer

    settings = worker_settings()
    Drainer(outbox(settings), settings.webhook_secret).start()


def _load_model() -> None:
    from farm.serve.runtime import get_runtime

    runtime = get_runtime()
    log.info("loaded %s model %s", runtime.engine_name, runtime.model)


@worker_ready.connect
def _start_heartbeat(sender: Any, **_: Any) -> None:
    # After the model loaded (receivers run in order): `farm probe live` checks this file,
    # so a worker is alive by its own word, not by a ping through Redis.
    from farm.serve.liveness import start_heartbeat

    start_heartbeat(sender.hostname)
