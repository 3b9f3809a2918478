"""Client -> Redis -> real worker process -> result, end to end."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from farm.client import Client, Job, JobStatus
from farm.config import Settings
from farm.errors import InvalidJobError, JobFailedError, StorageNotFoundError, UnknownLanguageError
from tests.conftest import EVAL, JFK, JFK_PHRASE, WorkerProcess, normalise, own_farm

pytestmark = pytest.mark.slow


def test_jfk_through_the_farm(client: Client) -> None:
    job = client.submit(JFK)
    result = job.result(timeout=120)
    assert JFK_PHRASE in normalise(result["text"])
    assert result["language"] == "en" and result["duration"] == pytest.approx(11.0)
    assert result["engine"] == "ctranslate2" and result["source"] == "jfk.flac"
    assert job.status().state == "succeeded" and job.status().percent == 100.0


def test_progress_is_reported_while_running(client: Client) -> None:
    job = client.submit(EVAL / "longform" / "ljspeech_LJ001-0001_to_0032.flac", beam_size=1)
    seen: set[float] = set()
    deadline = time.monotonic() + 300
    while not (status := job.status()).done and time.monotonic() < deadline:
        if status.state == "started":
            seen.add(status.percent)
        time.sleep(0.1)
    assert status.state == "succeeded"
    assert any(0 < p < 100 for p in seen), seen


def test_progress_carries_the_text_decoded_so_far(client: Client, long_clip: Path) -> None:
    # 90 s goes through faster-whisper's long-form loop, which yields each 30 s window's
    # segments as it decodes them (a clip of one window reports only at its end).
    text, partial = _partial_texts(client.submit(long_clip, beam_size=1), 0.1)
    assert partial, text
    assert all(text[s.text_offset :].startswith(s.text) for s in partial)  # what it said so far, it still says


def test_a_one_window_clip_reports_its_text_between_decode_passes(client: Client, one_window_clip: Path) -> None:
    # 28 s of LJSpeech: Whisper's seek loop decodes it in two passes (the first ends at its
    # last closed segment, about 24 s in); beam search makes each pass take over the 0.5 s
    # a job works before its first progress write.
    text, partial = _partial_texts(client.submit(one_window_clip, language="en"), 0.05)
    assert partial, text
    assert all(text[s.text_offset :].startswith(s.text) and s.text != text for s in partial)


def _partial_texts(job: Job, interval_s: float) -> tuple[str, list[JobStatus]]:
    """The job's final text, and the statuses seen while it ran that carried text short of 100 %."""
    running: list[JobStatus] = []
    deadline = time.monotonic() + 300
    while not (status := job.status()).done and time.monotonic() < deadline:
        if status.state == "started":
            running.append(status)
        time.sleep(interval_s)
    text = str(job.result(timeout=10)["text"])
    return text, [s for s in running if s.text and 0 < s.percent < 100]


def test_non_audio_fails_clearly_and_worker_serves_next_job(client: Client, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.wav"
    bogus.write_text("this is a shopping list, not a recording\n" * 20)
    bad = client.submit(bogus)
    good = client.submit(JFK)
    with pytest.raises(JobFailedError, match=r"'notes\.wav' is not decodable audio"):
        bad.result(timeout=120)
    status = bad.status()
    assert status.state == "failed" and "not decodable audio" in (status.error or "")
    assert JFK_PHRASE in normalise(good.result(timeout=120)["text"])


def test_inline_bytes_and_submit_many(client: Client) -> None:
    small = (EVAL / "whisper_cpp" / "jfk.mp3").read_bytes()
    jobs = client.submit_many([small, EVAL / "whisper_cpp" / "jfk.wav"], language="en")
    texts = [normalise(job.result(timeout=120)["text"]) for job in jobs]
    assert all(JFK_PHRASE in text for text in texts), texts


def test_word_timestamps_and_translate_options(client: Client) -> None:
    result = client.submit(JFK, word_timestamps=True, task="transcribe").result(timeout=120)
    words = result["words"]
    assert words and all(w["start"] <= w["end"] <= 11.01 for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)


def test_cancel_a_queued_job(farm_settings: Settings, tmp_path: Path) -> None:
    # One job slot, so the second job waits in Redis until it is cancelled.
    with own_farm(farm_settings, tmp_path, FARM_CONCURRENCY="1") as farm:
        own = farm.client
        blocker = own.submit(EVAL / "joinly" / "OSR_us_000_0034_8k.wav", beam_size=1)
        queued = own.submit(JFK)
        queued.cancel()
        blocker.result(timeout=300)
        deadline = time.monotonic() + 30
        while queued.status().state != "cancelled" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert queued.status().state == "cancelled"


def test_bad_options_and_missing_files_fail_before_submission(client: Client) -> None:
    with pytest.raises(UnknownLanguageError):
        client.submit(JFK, language="xx")
    with pytest.raises(InvalidJobError):
        client.submit(JFK, beam_size=0)
    with pytest.raises(StorageNotFoundError):
        client.submit("/no/such/file.wav")


def test_model_loaded_once_per_worker_process(client: Client, worker: WorkerProcess) -> None:
    client.submit_many([JFK, JFK], beam_size=1)[-1].result(timeout=120)
    assert worker.output().count("loaded ctranslate2 model") == 1
