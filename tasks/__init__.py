"""The Celery app (``celery -A tasks worker``) and its thin task functions.

Importing this package must stay cheap: no torch, no model. The model loads in each
worker child at start (``worker_process_init``) through a cached getter.
"""

from tasks import transcribe as _transcribe  # noqa: F401  (registers the task)
from tasks.app import app

__all__ = ["app"]
