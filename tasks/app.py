"""The Celery application, configured from the validated settings."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from farm.broker import celery_config
from farm.config import get_settings

log = logging.getLogger(__name__)

app = Celery("whisperfarm")
app.conf.update(celery_config(get_settings()))


@worker_process_init.connect
def _load_model(**_: Any) -> None:
    # Load in each child after the fork, so no CUDA context or thread pool is shared.
    from farm.runtime import get_runtime

    runtime = get_runtime()
    log.info("loaded %s model %s", runtime.engine_name, runtime.model)
