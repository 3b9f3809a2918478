"""Render a job result (the JSON payload a worker returns) as txt, json, srt, vtt or tsv."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from farm.constants import OUTPUT_FORMATS
from farm.errors import InvalidJobError

Result = Mapping[str, Any]


def render(result: Result, fmt: str) -> str:
    """The result in ``fmt``; raise InvalidJobError for a format that does not exist."""
    try:
        writer = _WRITERS[fmt]
    except KeyError:
        raise InvalidJobError(f"unknown output format {fmt!r}; choose from {', '.join(OUTPUT_FORMATS)}") from None
    return writer(result)


def to_txt(result: Result) -> str:
    return str(result["text"]).strip() + "\n"


def to_json(result: Result) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2) + "\n"


def to_srt(result: Result) -> str:
    cues = [
        f"{number}\n{_clock(seg['start'], ',')} --> {_clock(seg['end'], ',')}\n{_cue_text(seg)}\n"
        for number, seg in enumerate(_spoken(result), start=1)
    ]
    return "\n".join(cues)


def to_vtt(result: Result) -> str:
    cues = [f"{_clock(seg['start'], '.')} --> {_clock(seg['end'], '.')}\n{_cue_text(seg)}\n" for seg in _spoken(result)]
    return "WEBVTT\n\n" + "\n".join(cues)


def to_tsv(result: Result) -> str:
    # Whisper's own tsv: integer milliseconds, so spreadsheets sort it without parsing.
    rows = [f"{round(seg['start'] * 1000)}\t{round(seg['end'] * 1000)}\t{_cue_text(seg)}" for seg in _spoken(result)]
    return "start\tend\ttext\n" + "".join(row + "\n" for row in rows)


def _spoken(result: Result) -> list[Mapping[str, Any]]:
    return [seg for seg in result.get("segments", []) if _cue_text(seg)]


def _cue_text(segment: Mapping[str, Any]) -> str:
    # "-->" would end a cue early in SRT/VTT; blank lines would end the cue block.
    return " ".join(str(segment["text"]).replace("-->", "->").split())


def _clock(seconds: float, decimal_mark: str) -> str:
    millis = max(0, round(float(seconds) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_mark}{millis:03d}"


_WRITERS: dict[str, Callable[[Result], str]] = {
    "txt": to_txt,
    "json": to_json,
    "srt": to_srt,
    "vtt": to_vtt,
    "tsv": to_tsv,
}
