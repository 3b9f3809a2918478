"""Long audio: fan-out of one file across workers, merge order, formats, silence."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import jiwer
import numpy as np
import pytest
import srt
import webvtt

from farm.config import Settings
from farm.job.formats import render
from tests.conftest import EVAL, own_farm
from tests.test_audio import encode

pytestmark = pytest.mark.slow

LIBRI = EVAL / "longform" / "librispeech_test-other_dev_50utt.flac"
SILENT = EVAL / "mfa" / "se10x016-08071999-1334_u0016001.wav"
FANOUT = {"FARM_CPU_THREADS": "1", "FARM_FANOUT_ABOVE_S": "60", "FARM_FANOUT_PART_S": "100"}


def references(path: Path) -> str:
    rows = json.loads(path.with_suffix(".segments.json").read_text())
    return " ".join(row["reference"] for row in rows)


def normalised_wer(reference: str, hypothesis: str) -> float:
    def clean(text: str) -> str:
        kept = "".join(c.lower() if c.isalnum() or c.isspace() or c == "'" else " " for c in text)
        return " ".join(kept.split())

    return 100 * float(jiwer.wer(clean(reference), clean(hypothesis)))


def test_a_long_file_fans_out_over_two_workers(farm_settings: Settings, tmp_path: Path) -> None:
    env = FANOUT | {"FARM_CPU_WORKERS": "2"}
    with own_farm(farm_settings, tmp_path, count=2, **env) as farm:
        client = farm.client
        job = client.submit(LIBRI, language="en")
        seen = []
        deadline = time.monotonic() + 300
        while not (status := job.status()).done and time.monotonic() < deadline:
            seen.append(status.percent)
            time.sleep(0.3)
        result = job.result(timeout=10)
    assert result["parts"] == 5
    assert {worker.split("@")[0] for worker in result["workers"]} == {"cpu0", "cpu1"}  # both took parts
    assert any(0 < p < 100 for p in seen) and seen == sorted(seen)  # progress over all parts, never backwards
    segments = result["segments"]
    assert [s["id"] for s in segments] == list(range(len(segments)))
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts) and all(s["start"] <= s["end"] <= result["duration"] for s in segments)
    assert result["duration"] == pytest.approx(406.53, abs=0.01)
    assert normalised_wer(references(LIBRI), result["text"]) < 25.0
    cues = list(srt.parse(render(result, "srt")))
    assert [c.start for c in cues] == sorted(c.start for c in cues)
    assert cues[-1].end.total_seconds() <= result["duration"]
    assert len(list(webvtt.from_buffer(io.StringIO(render(result, "vtt"))))) == len(cues)


def test_a_part_that_fails_fails_the_job_naming_the_part(farm_settings: Settings, tmp_path: Path) -> None:
    # One job slot: the long job plans its parts, then a blocker runs while the file
    # disappears, so every part finds it gone.
    doomed = tmp_path / "doomed.flac"
    shutil.copy(LIBRI, doomed)
    with own_farm(farm_settings, tmp_path, FARM_CONCURRENCY="1", **FANOUT) as farm:
        client = farm.client
        long_job = client.submit(doomed, language="en", beam_size=1)
        blocker = client.submit(EVAL / "openai_whisper" / "jfk.flac", language="en")
        deadline = time.monotonic() + 120
        while blocker.status().state not in ("started", "succeeded") and time.monotonic() < deadline:
            time.sleep(0.1)
        doomed.unlink()
        deadline = time.monotonic() + 120
        while not (status := long_job.status()).done and time.monotonic() < deadline:
            time.sleep(0.3)
    assert status.state == "failed"
    assert "part 1/5 (0-" in (status.error or "") and "no such file" in (status.error or "")


@pytest.mark.parametrize("kind", ["recorded silence", "digital silence", "white noise"])
def test_silence_and_noise_give_empty_text(client: object, tmp_path: Path, kind: str) -> None:
    if kind == "recorded silence":
        path = SILENT
    else:
        rng = np.random.default_rng(7)
        samples = np.zeros(16000 * 20, np.float32) if kind == "digital silence" else rng.normal(0, 0.1, 16000 * 20)
        path = tmp_path / "noise.wav"
        encode(samples.astype(np.float32), 16000, path, "wav", "pcm_s16le", 1)
    result = client.submit(path).result(timeout=120)  # type: ignore[attr-defined]
    assert result["text"] == "" and result["segments"] == []
