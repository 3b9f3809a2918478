"""Bearer-token authentication: one shared token (``api_token``), required in production."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from farm.api.errors import ApiError
from farm.api.state import api_state
from farm.config import Settings
from farm.errors import ConfigError

bearer = HTTPBearer(auto_error=False, description="the api_token setting")


def check_settings(settings: Settings) -> None:
    """Refuse to serve a production API that anyone could use."""
    if settings.env == "production" and not settings.api_token:
        raise ConfigError("api_token: required in production (set FARM_API_TOKEN or .secrets.toml)")


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None
) -> None:
    expected = api_state(request).settings.api_token
    if not expected:
        return  # development without a token: open
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        message = "missing or wrong bearer token (Authorization: Bearer <api_token>)"
        raise ApiError(401, message, "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
