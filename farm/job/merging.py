"""Put the results of a fanned-out file's parts back together, in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Result = dict[str, Any]


def merge_parts(parts: Sequence[Result], source: str) -> Result:
    """One result for the whole file; parts already carry absolute timestamps."""
    segments = [segment for part in parts for segment in part["segments"]]
    for number, segment in enumerate(segments):
        segment["id"] = number
    merged: Result = {
        **parts[0],
        "duration": round(sum(part["duration"] for part in parts), 3),
        "text": " ".join(part["text"].strip() for part in parts if part["text"].strip()),
        "segments": segments,
        "source": source,
        "parts": len(parts),
        "workers": [part.get("worker", "") for part in parts],
        "timings": _timings(parts),
    }
    if any("words" in part for part in parts):
        merged["words"] = [word for part in parts for word in part.get("words", [])]
    return merged


def _timings(parts: Sequence[Result]) -> dict[str, float]:
    # Parts run in parallel: the sums are work done, not wall time.
    return {key: round(sum(part["timings"][key] for part in parts), 4) for key in ("decode_s", "total_s")}
