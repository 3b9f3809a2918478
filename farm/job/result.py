"""A finished job's result as it travels back: OpenAI's ``verbose_json`` shape plus farm details.

Typed dicts rather than dataclasses: the result crosses the Celery result backend as
JSON, and producers read it as plain JSON too, so the type describes that JSON exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from farm.job.spec import JobSpec
from farm.job.transcript import Segment, Transcript, Word


class WordResult(TypedDict):
    start: float
    end: float
    word: str
    probability: float


class _SegmentFields(TypedDict):
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float


class SegmentResult(_SegmentFields, total=False):
    words: list[WordResult]  # only when the job asked for word timestamps


class ResultTimings(TypedDict):
    decode_s: float  # inside the engine
    total_s: float  # the whole job on the worker (summed over parts for a merged result)


class _ResultFields(TypedDict):
    task: str
    language: str
    language_probability: float
    duration: float
    text: str
    segments: list[SegmentResult]
    source: str
    engine: str
    model: str
    timings: ResultTimings


class Result(_ResultFields, total=False):
    words: list[WordResult]  # every segment's words, when asked for
    worker: str  # the worker's host name
    parts: int  # a long file run as parts: how many
    workers: list[str]  # ... and which worker ran each
    outputs: dict[str, str]  # format -> where its result file was written


def result_payload(transcript: Transcript, spec: JobSpec, engine: str, model: str, total_s: float) -> Result:
    """The JSON-safe result of one job (or part) run on this worker."""
    with_words = spec.options.word_timestamps
    segments = [_segment(segment, with_words) for segment in transcript.segments]
    payload: Result = {
        "task": spec.options.task,
        "language": transcript.language,
        "language_probability": round(transcript.language_probability, 4),
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": segments,
        "source": spec.name,
        "engine": engine,
        "model": model,
        "timings": {"decode_s": round(transcript.timings.decode_s, 4), "total_s": round(total_s, 4)},
    }
    if with_words:
        payload["words"] = [word for segment in segments for word in segment.get("words", [])]
    return payload


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


def _timings(parts: Sequence[Result]) -> ResultTimings:
    # Parts run in parallel: the sums are work done, not wall time.
    decode_s, total_s = (round(sum(part["timings"][key] for part in parts), 4) for key in ("decode_s", "total_s"))
    return {"decode_s": decode_s, "total_s": total_s}


def _segment(segment: Segment, with_words: bool) -> SegmentResult:
    payload: SegmentResult = {
        "id": segment.id,
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "avg_logprob": segment.avg_logprob,
        "no_speech_prob": segment.no_speech_prob,
        "compression_ratio": segment.compression_ratio,
        "temperature": segment.temperature,
    }
    if with_words:
        payload["words"] = [_word(word) for word in segment.words]
    return payload


def _word(word: Word) -> WordResult:
    return {"start": word.start, "end": word.end, "word": word.word, "probability": word.probability}
