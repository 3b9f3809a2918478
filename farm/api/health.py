"""Probes and metrics: ``/healthz`` (the process answers), ``/readyz`` (it can do work), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from farm.api.errors import ERROR_RESPONSES
from farm.api.schemas import Health
from farm.api.state import api_state
from farm.io.metrics import exposition
from farm.queue.connections import RedisSettings, reachable

router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["metrics"])
PING_TIMEOUT_S = 2.0


@router.get("/healthz", summary="Liveness: the API process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: Redis answers and at least one worker is alive",
    response_model=Health,
    responses={503: {"model": Health, "description": "Redis or every worker is down"}},
)
async def readyz(request: Request) -> Health | JSONResponse:
    state = api_state(request)
    if not await run_in_threadpool(reachable, RedisSettings.from_settings(state.settings)):
        return _unready("redis does not answer at broker_url")
    workers = await run_in_threadpool(state.client.workers, PING_TIMEOUT_S, 1)  # one live worker is enough
    if not workers:
        return _unready("no worker answered a ping")
    return Health(status="ready", workers=workers)


def _unready(reason: str) -> JSONResponse:
    return JSONResponse(Health(status="unavailable", reason=reason).model_dump(), status_code=503)


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics of the whole farm",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "text format 0.0.4"},
        401: ERROR_RESPONSES[401],
    },
)
async def metrics(request: Request) -> Response:
    body, content_type = await run_in_threadpool(exposition, api_state(request).settings)
    return Response(body, media_type=content_type)
