from __future__ import annotations

import base64
import copy

import pytest

from farm.errors import InvalidJobError, PermanentError, UnknownLanguageError
from farm.job.result import Result, SegmentResult, merge_parts, result_payload
from farm.job.spec import Delivery, PartSpec, failed_job, job_message, parse_job, part_message
from farm.job.transcript import Segment, Timings, TranscribeOptions, Transcript, Word

DEFAULTS = TranscribeOptions(beam_size=5)


def test_round_trip_of_a_message() -> None:
    message = job_message("/data/call.flac", {"language": "de", "task": "translate", "beam_size": 2})
    spec = parse_job(message, DEFAULTS, inline_limit=1024)
    assert spec.audio == "/data/call.flac" and spec.name == "call.flac"
    assert (spec.options.language, spec.options.task, spec.options.beam_size) == ("de", "translate", 2)


def test_defaults_apply_when_options_are_missing() -> None:
    spec = parse_job({"audio": "s3://bucket/a.wav"}, DEFAULTS, inline_limit=0)
    assert spec.options == DEFAULTS


def test_auto_language_means_detect() -> None:
    spec = parse_job(job_message("a.wav", {"language": "auto"}), TranscribeOptions(language="en"), 0)
    assert spec.options.language is None


def test_inline_audio_within_the_limit() -> None:
    message = job_message("", {}, inline_audio=b"abc")
    assert parse_job(message, DEFAULTS, inline_limit=3).inline_audio == b"abc"
    with pytest.raises(InvalidJobError, match="at most 2 bytes"):
        parse_job({"audio": "", "audio_b64": base64.b64encode(b"abcdef").decode()}, DEFAULTS, inline_limit=2)


@pytest.mark.parametrize(
    ("message", "error", "match"),
    [
        ("not an object", InvalidJobError, "JSON object"),
        ({}, InvalidJobError, "needs 'audio'"),
        ({"audio": 42}, InvalidJobError, "needs 'audio'"),
        ({"audio": "a.wav", "options": {"language": "klingon"}}, UnknownLanguageError, "unknown language"),
        ({"audio": "a.wav", "options": {"beam_size": 0}}, InvalidJobError, "beam_size"),
        ({"audio": "a.wav", "options": {"beam_size": True}}, InvalidJobError, "beam_size"),
        ({"audio": "a.wav", "options": {"temperature": -0.5}}, InvalidJobError, "temperature"),
        ({"audio": "a.wav", "options": {"task": "summarise"}}, InvalidJobError, "task"),
        ({"audio": "a.wav", "options": {"colour": "red"}}, InvalidJobError, "unknown option"),
        ({"audio": "a.wav", "options": []}, InvalidJobError, "options"),
        ({"audio": "", "audio_b64": "***"}, InvalidJobError, "base64"),
    ],
)
def test_bad_messages_are_permanent_errors(message: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as caught:
        parse_job(message, DEFAULTS, inline_limit=100)
    assert isinstance(caught.value, PermanentError)


def test_a_part_is_parsed_whole_once() -> None:
    # The part's progress is a share of the whole file: its length must survive parsing.
    part = PartSpec(index=1, count=3, start=60.0, end=120.0, parent="job-1", total=170.5)
    spec = parse_job(part_message(job_message("a.wav", {}), part), DEFAULTS, 0)
    assert spec.part == part and spec.part.label() == "part 2/3 (60-120 s)"


@pytest.mark.parametrize(
    ("message", "announced"),
    [
        ("not an object", ("task-1", Delivery())),
        ({"part": {"index": 0, "count": 2, "start": 0, "end": 1, "parent": "job-1"}}, ("job-1", Delivery())),
        ({"part": "broken", "callback_url": "ftp://x"}, ("task-1", Delivery())),
        (
            {"callback_url": "https://example.com/hook", "formats": ["srt"]},
            ("task-1", Delivery("", ("srt",), "https://example.com/hook")),
        ),
    ],
)
def test_a_failed_message_names_its_job_and_never_raises(message: object, announced: tuple[str, Delivery]) -> None:
    assert failed_job("task-1", message) == announced


def test_results_carry_only_typed_fields() -> None:
    words = (Word(0.0, 0.5, " Hi", 0.9),)
    transcript = Transcript((Segment(0, 0.0, 0.5, " Hi", words=words),), "en", 0.99, 1.0, Timings(0.1))
    spec = parse_job(job_message("a.wav", {"word_timestamps": True}), DEFAULTS, 0)
    part = result_payload(transcript, spec, "ctranslate2", "tiny", 0.2) | {"worker": "w1"}
    merged = merge_parts([part, copy.deepcopy(part)], "a.wav")
    for result in (part, merged):
        assert set(result) <= set(Result.__annotations__)
        assert set(result["segments"][0]) <= set(SegmentResult.__annotations__)
    assert Result.__required_keys__ <= set(merged) and (merged["parts"], merged["workers"]) == (2, ["w1", "w1"])
    assert [s["id"] for s in merged["segments"]] == [0, 1] and len(merged["words"]) == 2
