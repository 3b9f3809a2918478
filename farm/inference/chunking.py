"""Cut a long file into parts at silences, so parts can run on different workers.

A part boundary goes in the middle of a pause near where an even split would put it,
preferring long pauses (between sentences) to short ones (between words); only when no
pause lies within half a part of that point is a word at risk.
Timestamps stay exact: every part knows its offset, and merging adds it back.
"""

from __future__ import annotations

import itertools
import math

from farm.inference.vad import Span


def part_spans(duration: float, speech: list[Span], part_s: float) -> list[Span]:
    """Split ``[0, duration]`` into about ``duration / part_s`` parts cut in pauses."""
    count = max(1, math.ceil(duration / part_s))
    pauses = _pauses(speech)
    cuts: list[float] = []
    for k in range(1, count):
        ideal = k * duration / count
        cut = _best_pause(pauses, ideal, reach=part_s / 2, after=cuts[-1] if cuts else 0.0)
        cuts.append(ideal if cut is None else cut)
    edges = [0.0, *cuts, duration]
    return [Span(round(a, 3), round(b, 3)) for a, b in itertools.pairwise(edges) if b > a]


def _pauses(speech: list[Span]) -> list[Span]:
    return [Span(left.end, right.start) for left, right in itertools.pairwise(speech) if right.start > left.end]


def _best_pause(pauses: list[Span], target: float, reach: float, after: float) -> float | None:
    middles = [(p.start + p.end) / 2 for p in pauses]
    candidates = [(m, p) for m, p in zip(middles, pauses, strict=True) if m > after and abs(m - target) <= reach]
    if not candidates:
        return None
    # One second of extra pause is worth moving the cut by half a part's reach.
    middle, _ = min(candidates, key=lambda c: abs(c[0] - target) / reach - min(c[1].duration, 2.0))
    return middle
