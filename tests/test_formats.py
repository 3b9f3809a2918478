from __future__ import annotations

import io
import json

import pytest
import srt
import webvtt

from farm.errors import InvalidJobError
from farm.job.formats import render

RESULT = {
    "text": "Hello there. Second line --> with arrow.",
    "language": "en",
    "duration": 3725.5,
    "segments": [
        {"id": 0, "start": 0.0, "end": 1.5, "text": " Hello there."},
        {"id": 1, "start": 1.5, "end": 1.5, "text": "   "},
        {"id": 2, "start": 3661.25, "end": 3665.0, "text": " Second line\n\n--> with arrow."},
    ],
}


def test_srt_parses_back_with_real_parser() -> None:
    cues = list(srt.parse(render(RESULT, "srt")))
    assert [c.content for c in cues] == ["Hello there.", "Second line -> with arrow."]
    assert cues[1].start.total_seconds() == pytest.approx(3661.25)
    assert cues[1].end.total_seconds() == pytest.approx(3665.0)


def test_vtt_parses_back_with_real_parser() -> None:
    cues = list(webvtt.from_buffer(io.StringIO(render(RESULT, "vtt"))))
    assert [c.text for c in cues] == ["Hello there.", "Second line -> with arrow."]
    assert cues[1].start == "01:01:01.250"


def test_txt_json_and_tsv() -> None:
    assert render(RESULT, "txt") == "Hello there. Second line --> with arrow.\n"
    assert json.loads(render(RESULT, "json"))["segments"][2]["start"] == 3661.25
    rows = render(RESULT, "tsv").splitlines()
    assert rows[0] == "start\tend\ttext" and rows[2].startswith("3661250\t3665000\t")


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(InvalidJobError, match="unknown output format 'docx'"):
        render(RESULT, "docx")
