"""The official openai SDK against the farm's OpenAI-compatible endpoints, every response format."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest
import srt
import webvtt
from celery.result import AsyncResult

from farm.client import Client
from farm.config import Settings
from tests.api.conftest import TOKEN
from tests.conftest import EVAL, JFK_PHRASE, normalise

# The SDK marks audio.translations deprecated; the farm still serves it.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")]

JFK_MP3 = EVAL / "whisper_cpp" / "jfk.mp3"
FAST = {"beam_size": 1}  # farm extension, sent as an extra form field


@pytest.fixture(scope="module")
def sdk(api_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api_url}/v1", api_key=TOKEN, max_retries=0, timeout=120)


def transcribe(sdk: openai.OpenAI, **kwargs: Any) -> Any:
    with open(JFK_MP3, "rb") as audio:
        return sdk.audio.transcriptions.create(file=audio, model="whisper-1", extra_body=FAST, **kwargs)


@pytest.fixture(scope="module")
def answers(sdk: openai.OpenAI) -> dict[str, Any]:
    # Sent at once: the worker packs concurrent jobs into shared windows.
    requests = {
        "json": {"response_format": "json", "language": "en"},
        "text": {"response_format": "text"},
        "srt": {"response_format": "srt"},
        "vtt": {"response_format": "vtt", "prompt": "President Kennedy."},
        "verbose_json": {"response_format": "verbose_json", "timestamp_granularities": ["word", "segment"]},
    }
    with ThreadPoolExecutor(len(requests)) as pool:
        futures = {name: pool.submit(transcribe, sdk, **kwargs) for name, kwargs in requests.items()}
        return {name: future.result() for name, future in futures.items()}


def test_json(answers: dict[str, Any]) -> None:
    assert isinstance(answers["json"], openai.types.audio.Transcription)
    assert JFK_PHRASE in normalise(answers["json"].text)


def test_text(answers: dict[str, Any]) -> None:
    assert isinstance(answers["text"], str) and JFK_PHRASE in normalise(answers["text"])


def test_srt(answers: dict[str, Any]) -> None:
    cues = list(srt.parse(answers["srt"]))
    assert cues and JFK_PHRASE in normalise(" ".join(cue.content for cue in cues))
    assert cues[-1].end.total_seconds() <= 11.01


def test_vtt(answers: dict[str, Any]) -> None:
    captions = list(webvtt.from_buffer(io.StringIO(answers["vtt"])))
    assert captions and JFK_PHRASE in normalise(" ".join(c.text for c in captions))


def test_verbose_json_with_words(answers: dict[str, Any]) -> None:
    verbose = answers["verbose_json"]
    assert isinstance(verbose, openai.types.audio.TranscriptionVerbose)
    assert verbose.language == "en" and verbose.duration == pytest.approx(11.0, abs=0.1)
    assert verbose.segments and all(s.start <= s.end for s in verbose.segments)
    assert verbose.words and [w.start for w in verbose.words] == sorted(w.start for w in verbose.words)
    assert JFK_PHRASE in normalise(" ".join(w.word for w in verbose.words))


def test_an_english_only_model_refuses_translation_and_other_languages(sdk: openai.OpenAI) -> None:
    # tiny.en would "translate" by transcribing, and write invented English for German.
    refused = r"tiny\.en is English-only and cannot translate"
    with pytest.raises(openai.BadRequestError, match=refused), open(JFK_MP3, "rb") as audio:
        sdk.audio.translations.create(file=audio, model="whisper-1", extra_body=FAST)
    with pytest.raises(openai.BadRequestError, match="English-only and cannot transcribe 'de'"):
        transcribe(sdk, language="de")


def test_sdk_errors_carry_the_message(sdk: openai.OpenAI, api_url: str) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown language code"):
        transcribe(sdk, language="xx")
    anonymous = openai.OpenAI(base_url=f"{api_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="bearer token"), open(JFK_MP3, "rb") as audio:
        anonymous.audio.transcriptions.create(file=audio, model="whisper-1")


def test_models_lists_what_is_served_and_refuses_others(sdk: openai.OpenAI) -> None:
    served = [model.id for model in sdk.models.list()]
    assert served == ["whisper-1", "tiny.en"]
    assert sdk.models.retrieve("tiny.en").id == "tiny.en"
    refused = r"'gpt-4o-transcribe' is not served here; use one of: whisper-1, tiny\.en"
    with pytest.raises(openai.BadRequestError, match=refused), open(JFK_MP3, "rb") as audio:
        sdk.audio.transcriptions.create(file=audio, model="gpt-4o-transcribe")
    with open(JFK_MP3, "rb") as audio:
        named = sdk.audio.transcriptions.create(file=audio, model="tiny.en", extra_body=FAST)
    assert JFK_PHRASE in normalise(named.text)


def test_stream_answers_transcript_text_events(sdk: openai.OpenAI) -> None:
    with open(JFK_MP3, "rb") as audio:
        events = list(sdk.audio.transcriptions.create(file=audio, model="whisper-1", stream=True, extra_body=FAST))
    *deltas, done = events
    assert deltas and all(isinstance(e, openai.types.audio.TranscriptionTextDeltaEvent) for e in deltas)
    assert isinstance(done, openai.types.audio.TranscriptionTextDoneEvent)
    assert "".join(e.delta for e in deltas) == done.text and JFK_PHRASE in normalise(done.text)
    with pytest.raises(openai.BadRequestError, match="response_format json or text"), open(JFK_MP3, "rb") as audio:
        sdk.audio.transcriptions.create(file=audio, model="whisper-1", stream=True, response_format="srt")


def test_stream_sends_text_while_the_job_decodes(sdk: openai.OpenAI, long_clip: Path, api_settings: Settings) -> None:
    # 90 s: faster-whisper's long-form loop decodes it window by window (30 s each).
    with open(long_clip, "rb") as audio:
        raw = sdk.audio.transcriptions.with_raw_response.create(
            file=audio, model="whisper-1", stream=True, extra_body=FAST
        )
    arrivals = [(datetime.now(UTC), event) for event in raw.parse()]
    *deltas, (_, done) = arrivals
    assert isinstance(done, openai.types.audio.TranscriptionTextDoneEvent)
    assert len(deltas) >= 2 and "".join(event.delta for _, event in deltas) == done.text
    client = Client(api_settings)
    finished = AsyncResult(raw.headers["x-job-id"], app=client.app).date_done
    client.close()
    assert finished is not None and deltas[0][0] < finished.replace(tzinfo=finished.tzinfo or UTC)


def test_a_failed_streamed_job_raises_its_error(sdk: openai.OpenAI) -> None:
    notes = io.BytesIO(b"a shopping list, not a recording\n" * 50)
    with pytest.raises(openai.APIError, match="not decodable audio"):
        list(sdk.audio.transcriptions.create(file=("notes.wav", notes), model="whisper-1", stream=True))
