"""What every route shares: settings, the farm client and the job registry, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from farm.api.registry import JobRegistry
from farm.client import Client
from farm.config import Settings


@dataclass(frozen=True)
class ApiState:
    settings: Settings
    client: Client
    registry: JobRegistry


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.farm
    return state
