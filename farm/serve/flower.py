"""The Celery app Flower runs on (``celery -A farm.serve.flower flower``).

Workers use the farm's own Redis transport class (``farm.queue.transport``), which
Flower's Broker tab cannot name ("'redis' broker is not supported"): Flower builds its
queue view from the connection's URL, and a transport class is no URL scheme. This app
has the producers' configuration, with kombu's plain Redis transport, so Flower sees
``redis://`` (or ``rediss://``) and shows every queue's length. It never imports the
tasks, so Flower starts no model and no CUDA.
"""

from __future__ import annotations

from celery import Celery

from farm.config import get_settings
from farm.queue.broker import celery_config

app = Celery("whisperfarm")
app.conf.update(celery_config(get_settings()))
