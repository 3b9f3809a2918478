from __future__ import annotations

import base64

import pytest

from farm.errors import InvalidJobError, PermanentError, UnknownLanguageError
from farm.job.spec import job_message, parse_job
from farm.job.transcript import TranscribeOptions

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
