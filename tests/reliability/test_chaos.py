"""The short chaos soak (bench/chaos.py, about 3 minutes): faults of every kind at random
while real clips run; nothing lost, nothing run twice, no wrong or leaked text, the
garbage in the dead letters, and the farm still serving at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.reliability.conftest import size

pytestmark = pytest.mark.slow


def test_a_short_chaos_soak_loses_nothing(tmp_path: Path) -> None:
    report_path = tmp_path / "chaos.json"
    argv = [
        sys.executable, "bench/chaos.py", "--minutes", str(size("CHAOS_MINUTES", 2)),
        "--jobs", str(size("CHAOS_JOBS", 60)), "--clips", "40", "--warm-up", "6",
        "--min-gap", "8", "--max-gap", "16", "--seed", "7", "--json", str(report_path),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    print(done.stdout[-2500:])
    assert sum(report["faults"].values()) >= 4, report["faults"]
    assert (report["lost"], report["duplicated"], report["wrong"], report["leaks"]) == (0, 0, 0, 0), report
    assert report["succeeded"] == report["jobs"] > 0
    assert report["bad_inputs_typed"] == report["bad_inputs"]
    assert report["dead_letters"] >= report["garbage_pushed"]
    assert report["still_up"]
