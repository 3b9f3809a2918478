"""Pack short clips from different jobs into shared 30 s windows, and split them back.

Whisper pads every input to a 30 s window, so a 7 s clip pays for 30 s of encoder
work. Measured on 2 CPU cores with tiny.en (docs/benchmarks.md), packing the 50
LibriSpeech clips into shared windows nearly doubled throughput. Clips are joined with
a second of silence; each decoded word goes back to the clip its midpoint falls in.

Word times are guesses (cross-attention alignment), and Whisper sometimes skips a short
clip at the start of a window or runs two clips into one segment, with the times of the
words smeared across the gap. ``doubtful`` names the clips whose share cannot be
trusted then, and the batcher transcribes those alone, so a job never keeps a word
that may belong to another. Whisper may also stop a clip's text mid-phrase and go on
with the next clip, the rest of its words in no job; ``covers`` holds a clip's words
against where VAD hears its speech, and a clip they do not cover is run alone too. And a
packed decode may say a phrase twice in a row ("the gut-end the gut-end"), too short a
loop for the gzip check; ``repeats_a_phrase`` flags it, and that clip is run alone too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from farm.inference.signal import SAMPLE_RATE, Audio
from farm.inference.vad import Span
from farm.job.transcript import Segment, Timings, Transcript, Word

WINDOW_S = 29.0  # under Whisper's 30 s so the last clip's final words are not cut
# Silence between clips. On random groupings of the 50 LibriSpeech clips (tiny.en, beam 5,
# doubtful clips re-run alone): 0.5 s left 18.9 % WER, 1.0 s 16.7 %, 1.5 s 18.4 %,
# 2.0 s 23.5 % (a decoding loop), against 17.9 % one clip per call (docs/throughput.md).
GAP_S = 1.0
# Below this mean word probability a packed clip is re-run alone. Over 214 packed clips
# (5 groupings), the 5 under 0.6 were the ones packing made worse (per-clip WER +1.88 in
# sum, the other 209 -1.79); 0.65 flags twice as many for less.
MIN_WORD_PROBABILITY = 0.6
# A packed clip's words must cover its speech: more than this much speech (VAD) with no
# word of the clip on it, at the start, in the middle or at the end, means its text was
# cut. On 5 random groupings of the 50 LibriSpeech clips (250 packed clips), the words of
# clips that packing left whole never missed more than 0.8 s of speech.
MAX_UNHEARD_S = 1.0
# ...and at least this many words per second of speech: alone, the 50 clips have 1.5 to
# 3.6; a clip whose text was cut but whose word times were spread over the gap has fewer.
MIN_WORDS_PER_SPEECH_S = 1.0
# A phrase of at least this many words said twice back to back in a packed clip's text is a
# loop (a single word twice, "that that", is ordinary speech).
MIN_REPEATED_WORDS = 2
# A word's time is an alignment guess; it counts as heard this far either side, as VAD
# pads speech (without it, one zero-length word placed 1.2 s late flagged a whole clip).
WORD_PAD_S = 0.2


@dataclass(frozen=True)
class Placement:
    """Where clip ``index`` (of the list given to ``pack``) sits inside its window."""

    index: int
    offset: float
    duration: float

    @property
    def end(self) -> float:
        return self.offset + self.duration


@dataclass(frozen=True)
class Window:
    audio: Audio
    placements: tuple[Placement, ...]


def pack(clips: Sequence[Audio], window_s: float = WINDOW_S, gap_s: float = GAP_S) -> list[Window]:
    """First-fit decreasing: longest clips first, each into the first window with room."""
    bins: list[list[int]] = []
    used: list[float] = []
    for index in sorted(range(len(clips)), key=lambda i: -len(clips[i])):
        seconds = len(clips[index]) / SAMPLE_RATE
        slot = next((b for b, total in enumerate(used) if total + gap_s + seconds <= window_s), None)
        if slot is None:
            bins.append([index])
            used.append(seconds)
        else:
            bins[slot].append(index)
            used[slot] += gap_s + seconds
    return [_window(clips, members, gap_s) for members in bins]


def _window(clips: Sequence[Audio], members: list[int], gap_s: float) -> Window:
    silence = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
    pieces: list[Audio] = []
    placements = []
    offset = 0.0
    for position, index in enumerate(sorted(members)):
        if position:
            pieces.append(silence)
            offset += len(silence) / SAMPLE_RATE
        pieces.append(clips[index])
        duration = len(clips[index]) / SAMPLE_RATE
        placements.append(Placement(index, offset, duration))
        offset += duration
    return Window(np.concatenate(pieces), tuple(placements))


def split(window: Window, transcript: Transcript) -> dict[int, Transcript]:
    """One transcript per clip, with times relative to the clip's own start."""
    pieces: dict[int, list[Segment]] = {p.index: [] for p in window.placements}
    for segment in transcript.segments:
        for placement, words in _words_by_clip(window, segment):
            pieces[placement.index].append(_shifted(segment, placement, words))
    share = transcript.timings.decode_s / max(sum(p.duration for p in window.placements), 1e-9)
    return {p.index: _clip_transcript(transcript, p, pieces[p.index], share) for p in window.placements}


def doubtful(window: Window, transcript: Transcript) -> set[int]:
    """Clips (their ``index``) whose share of the window's text cannot be trusted.

    A segment whose words fall in two clips means Whisper ran them together or misplaced
    its times; a clip with no word at all was most likely skipped; a clip whose words
    Whisper itself was unsure of was most likely thrown off by its neighbours' speech.
    All go back to their jobs alone rather than as a guess.
    """
    words: dict[int, list[Word]] = {p.index: [] for p in window.placements}
    heard: set[int] = set()
    suspects: set[int] = set()
    for segment in transcript.segments:
        groups = _words_by_clip(window, segment)
        owners = {placement.index for placement, _ in groups} | _ends(window, segment)
        heard |= owners
        suspects |= owners if len(owners) > 1 else set()
        for placement, own in groups:
            words[placement.index].extend(own)
    unsure = {index for index, own in words.items() if _unsure(own)}
    return suspects | unsure | {p.index for p in window.placements if p.index not in heard}


def _unsure(words: list[Word]) -> bool:
    # Engines that give no word probability (transformers) report 0: nothing to judge.
    known = [word.probability for word in words if word.probability > 0]
    return bool(known) and sum(known) / len(known) < MIN_WORD_PROBABILITY


def _ends(window: Window, segment: Segment) -> set[int]:
    # Engines without word times: a segment also counts where it starts and where it ends.
    return set() if segment.words else {_owner(window, segment.start).index, _owner(window, segment.end).index}


def _words_by_clip(window: Window, segment: Segment) -> list[tuple[Placement, tuple[Word, ...]]]:
    if not segment.words:
        # Engines without word times: the whole segment goes where its middle lies.
        return [(_owner(window, (segment.start + segment.end) / 2), ())]
    groups: list[tuple[Placement, list[Word]]] = []
    for word in segment.words:
        owner = _owner(window, (word.start + word.end) / 2)
        if groups and groups[-1][0] is owner:
            groups[-1][1].append(word)
        else:
            groups.append((owner, [word]))
    return [(owner, tuple(words)) for owner, words in groups]


def _owner(window: Window, moment: float) -> Placement:
    """The clip nearest to ``moment``: inside it, or closest across a gap."""
    return min(
        window.placements,
        key=lambda p: 0.0 if p.offset <= moment <= p.end else min(abs(moment - p.offset), abs(moment - p.end)),
    )


def _shifted(segment: Segment, placement: Placement, words: tuple[Word, ...]) -> Segment:
    moved = tuple(_clamped_word(w, placement) for w in words)
    if moved:
        return replace(
            segment, start=moved[0].start, end=moved[-1].end, text="".join(w.word for w in moved), words=moved
        )
    return replace(segment, start=_clamp(segment.start, placement), end=_clamp(segment.end, placement))


def _clamped_word(word: Word, placement: Placement) -> Word:
    return replace(word, start=_clamp(word.start, placement), end=_clamp(word.end, placement))


def _clamp(moment: float, placement: Placement) -> float:
    return round(min(max(moment - placement.offset, 0.0), placement.duration), 3)


def _clip_transcript(window: Transcript, placement: Placement, segments: list[Segment], share: float) -> Transcript:
    numbered = tuple(replace(segment, id=number) for number, segment in enumerate(segments))
    return Transcript(
        segments=numbered,
        language=window.language,
        language_probability=window.language_probability,
        duration=placement.duration,
        timings=Timings(decode_s=share * placement.duration),
    )


def may_be_cut(piece: Transcript) -> bool:
    """Whether ``covers`` could fail: only then is the clip's speech worth a VAD pass.

    Words on every second of the clip, at a speaking rate, cover any speech it holds.
    """
    return bool(unheard(piece)) or _word_count(piece) < MIN_WORDS_PER_SPEECH_S * piece.duration


def covers(piece: Transcript, speech: Sequence[Span]) -> bool:
    """Whether a clip's words cover its speech: none of it over ``MAX_UNHEARD_S`` without a
    word, and at least ``MIN_WORDS_PER_SPEECH_S`` words per second of it."""
    missed = max((sum(_overlap(gap, span) for span in speech) for gap in unheard(piece)), default=0.0)
    spoken = sum(span.duration for span in speech)
    return missed <= MAX_UNHEARD_S and _word_count(piece) >= MIN_WORDS_PER_SPEECH_S * spoken


def unheard(piece: Transcript) -> list[Span]:
    """Stretches of the clip over ``MAX_UNHEARD_S`` that no word (or wordless segment) covers."""
    gaps = []
    reached = 0.0
    for span in sorted(_heard(piece), key=lambda s: s.start):
        gaps.append(Span(reached, span.start))
        reached = max(reached, span.end)
    gaps.append(Span(reached, piece.duration))
    return [gap for gap in gaps if gap.duration > MAX_UNHEARD_S]


def _heard(piece: Transcript) -> list[Span]:
    # Engines without word times: a segment covers its own stretch.
    units = [unit for segment in piece.segments for unit in (segment.words or (segment,))]
    return [Span(unit.start - WORD_PAD_S, unit.end + WORD_PAD_S) for unit in units]


def _word_count(piece: Transcript) -> int:
    return sum(len(segment.words) or len(segment.text.split()) for segment in piece.segments)


def repeats_a_phrase(piece: Transcript) -> bool:
    """Whether a clip's text says a phrase of ``MIN_REPEATED_WORDS`` or more words twice
    back to back, case and punctuation aside: a short decoding loop that gzip misses.

    Speech repeats itself too ("and then and then"); a false alarm costs a lone decode.
    """
    return repeated_phrase(piece) is not None


def repeated_phrase(piece: Transcript) -> str | None:
    """The first phrase ``repeats_a_phrase`` finds said twice in a row (normalised), if any."""
    words = re.findall(r"[\w']+", piece.text.lower())
    found = (_repeated_at(words, start) for start in range(len(words)))
    return next((phrase for phrase in found if phrase is not None), None)


def _repeated_at(words: list[str], start: int) -> str | None:
    for n in range(MIN_REPEATED_WORDS, (len(words) - start) // 2 + 1):
        if words[start : start + n] == words[start + n : start + 2 * n]:
            return " ".join(words[start : start + n])
    return None


def _overlap(a: Span, b: Span) -> float:
    return max(0.0, min(a.end, b.end) - max(a.start, b.start))
