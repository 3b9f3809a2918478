"""Fixtures for the API tests: one uvicorn server on a free port, in front of the session worker."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from farm.api import create_app
from farm.config import Settings
from tests.api.servers import MotoServer, serve_app, shared_moto
from tests.conftest import WorkerProcess

TOKEN = "tok-" + secrets.token_hex(8)
MAX_UPLOAD_MB = 2


@pytest.fixture(scope="session")
def moto_server() -> MotoServer:
    return shared_moto()


@pytest.fixture(scope="session")
def api_settings(farm_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The worker shares this filesystem, so uploads go to a directory both can see.
    uploads = tmp_path_factory.mktemp("uploads")
    return replace(farm_settings, api_token=TOKEN, upload_dir=str(uploads), api_max_upload_mb=MAX_UPLOAD_MB)


@pytest.fixture(scope="session")
def api_url(api_settings: Settings, worker: WorkerProcess, moto_server: MotoServer) -> Iterator[str]:
    with serve_app(create_app(api_settings)) as url:
        yield url


@pytest.fixture()
def http(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        yield client
