"""``GET /v1/models`` and the ``model`` field: which names the farm answers to.

The farm serves one model (the ``model`` setting). ``whisper-1``, the name OpenAI's
examples use, is an alias for it; any other name is refused with the list of served
ones rather than silently answered by a different model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from farm.api.errors import ERROR_RESPONSES, NOT_FOUND, ApiError
from farm.api.state import api_state
from farm.config import Settings
from farm.constants import LANGUAGES
from farm.job.languages import check_model_supports

router = APIRouter(prefix="/v1/models", tags=["OpenAI-compatible"])

DEFAULT_ALIAS = "whisper-1"
OWNER = "whisperfarm"


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = OWNER


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


def served(settings: Settings) -> list[str]:
    """The names a request may give: the alias first, then the configured model."""
    return list(dict.fromkeys([DEFAULT_ALIAS, settings.model]))


def check_model(settings: Settings, name: str) -> None:
    """Refuse a model the farm does not serve (400, naming those it does)."""
    if name not in served(settings):
        names = ", ".join(served(settings))
        raise ApiError(400, f"model {name!r} is not served here; use one of: {names}", "model_not_found", "model")


def refuse_unserved_language(settings: Settings, options: Mapping[str, Any]) -> None:
    """An English-only model asked for another language or a translation: 400 now, not after a queue wait.

    A code that is no language at all is left to the option checks, which say so.
    """
    language = options.get("language")
    if language is None or language in LANGUAGES:
        check_model_supports(settings.model, language, options.get("task"))


@router.get("", summary="The models this farm serves", responses={**ERROR_RESPONSES})
async def list_models(request: Request) -> ModelList:
    return ModelList(data=[Model(id=name) for name in served(api_state(request).settings)])


@router.get("/{model_id:path}", summary="One served model", responses={**ERROR_RESPONSES, **NOT_FOUND})
async def get_model(request: Request, model_id: str = Path(description="a name GET /v1/models lists")) -> Model:
    if model_id not in served(api_state(request).settings):
        raise ApiError(404, f"model {model_id!r} is not served here", "model_not_found", "model")
    return Model(id=model_id)
