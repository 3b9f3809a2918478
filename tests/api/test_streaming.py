"""The streaming rule: deltas only extend what was sent, and add up to the done event's text."""

from __future__ import annotations

from farm.api.streaming import extension, final_events


def test_a_delta_extends_what_was_sent() -> None:
    assert extension("", "And so", 0) == "And so"
    assert extension("And so", "And so my fellow", 0) == " my fellow"
    assert extension("And so my", "so my fellow", 4) == " fellow"  # the report's start was cut off


def test_no_delta_for_text_that_disagrees_or_leaves_a_gap() -> None:
    assert extension("And so my", "And then", 0) == ""  # a decode run again said something else
    assert extension("And", "fellow", 10) == ""  # text between was never seen: the end brings it


def test_the_end_sends_the_rest_and_the_whole_text() -> None:
    events = final_events("And so", "And so my fellow Americans")
    assert events == [
        {"type": "transcript.text.delta", "delta": " my fellow Americans"},
        {"type": "transcript.text.done", "text": "And so my fellow Americans"},
    ]
    assert final_events("And so", "And so") == [{"type": "transcript.text.done", "text": "And so"}]


def test_a_final_text_that_contradicts_the_stream_is_still_the_done_text() -> None:
    assert final_events("And then", "And so") == [{"type": "transcript.text.done", "text": "And so"}]
