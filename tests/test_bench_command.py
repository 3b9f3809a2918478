"""`farm bench` runs real farms and writes the report the capacity planner reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EVAL, ROOT

pytestmark = pytest.mark.slow


def test_bench_writes_a_report_with_xrt_and_wer(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    shutil.copy(EVAL / "openai_whisper" / "jfk.flac", audio / "jfk.flac")
    shutil.copy(EVAL / "whisper_cpp" / "jfk.mp3", audio / "jfk.mp3")
    reference = (
        "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    )
    manifest = audio / "manifest.jsonl"
    manifest.write_text(
        "".join(json.dumps({"path": n, "reference": reference}) + "\n" for n in ("jfk.flac", "jfk.mp3"))
    )
    out = tmp_path / "report.json"
    argv = [sys.executable, "-m", "farm.cli", "bench", str(audio), "--devices", "cpu", "--cpu-threads", "2"]
    argv += ["--concurrency", "1,2", "--beam-size", "1", "--references", str(manifest), "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["hardware"]["cores"] == os.cpu_count()
    assert report["versions"]["faster-whisper"]
    assert report["audio"] == {"files": 2, "seconds": 22.0}
    results = report["results"]
    assert [r["concurrency"] for r in results] == [1, 2]
    for result in results:
        assert result["xrt"] > 1.0 and result["wall_s"] > 0
        assert result["wer"] < 10.0
        assert 100 < result["peak_rss_mb"] < 4096
        assert result["engine"] == "ctranslate2" and result["model"] == "tiny.en"
