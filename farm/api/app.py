"""The FastAPI application: ``create_app(settings)`` for tests and ``serve`` for ``farm api``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from farm.api import errors, health, jobs, models, openapi, transcriptions
from farm.api.auth import check_settings, require_token
from farm.api.limits import UploadLimit
from farm.api.registry import JobRegistry
from farm.api.state import ApiState
from farm.client import Client
from farm.config import Settings, get_settings
from farm.io.from_settings import outbox
from farm.io.outbox import Drainer
from farm.queue.connections import RedisSettings

MIB = 1 << 20
DESCRIPTION = """Speech to text on a farm of Whisper workers.

* `POST /v1/audio/transcriptions` and `/v1/audio/translations` speak OpenAI's protocol:
  point an OpenAI SDK's `base_url` at `<this server>/v1`.
* `/v1/jobs` queues long files and follows them; results can go to S3 and a webhook.
* Every `/v1` route and `/metrics` need `Authorization: Bearer <api_token>` when a token is set.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API for ``settings``; raises ConfigError for a production API without a token."""
    settings = settings or get_settings()
    check_settings(settings)
    client = Client(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The API sends pending webhooks too, so they go out while no worker is up.
        drainer = Drainer(outbox(settings), settings.webhook_secret).start()
        yield
        drainer.stop()
        client.close()

    app = FastAPI(
        title="whisperfarm",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.farm = ApiState(
        settings, client, JobRegistry(RedisSettings.from_settings(settings), settings.result_expires)
    )
    errors.install(app)
    app.add_middleware(UploadLimit, max_bytes=settings.api_max_upload_mb * MIB)
    protected = [Depends(require_token)]
    app.include_router(health.router)
    app.include_router(health.metrics_router, dependencies=protected)
    app.include_router(transcriptions.router, dependencies=protected)
    app.include_router(jobs.router, dependencies=protected)
    app.include_router(models.router, dependencies=protected)
    openapi.install(app)
    return app


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the API in the foreground until SIGTERM/SIGINT (``farm api``)."""
    import uvicorn

    app = create_app(settings)
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )
