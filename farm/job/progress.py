"""A running job's progress as the result backend holds it, written by workers and read by clients.

The meta of the ``PROGRESS`` state is ``{"percent": p}`` plus, once text is decoded,
``"text"``: the end of the text so far, at most ``PROGRESS_TEXT_CHARS`` characters, and
``"text_offset"``: where that end starts in the job's text. Messages stay small on an
hour-long file, and a reader that saw the start before can still line the rest up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from farm.constants import PROGRESS_TEXT_CHARS


@dataclass(frozen=True)
class JobProgress:
    """The share of a job's audio done (0-100) and the text decoded so far."""

    percent: float
    text: str = ""


@dataclass(frozen=True)
class PartialText:
    """The end of a running job's text: ``text`` starts at character ``offset`` of it."""

    text: str = ""
    offset: int = 0


def progress_meta(progress: JobProgress) -> dict[str, Any]:
    meta: dict[str, Any] = {"percent": round(progress.percent, 1)}
    if progress.text:
        offset = max(0, len(progress.text) - PROGRESS_TEXT_CHARS)
        meta |= {"text": progress.text[offset:], "text_offset": offset}
    return meta


def partial_text(meta: Any) -> PartialText:
    """What a ``PROGRESS`` meta says of the text; nothing for any other state's."""
    if not isinstance(meta, dict) or not isinstance(meta.get("text"), str):
        return PartialText()
    return PartialText(meta["text"], int(meta.get("text_offset", 0)))
