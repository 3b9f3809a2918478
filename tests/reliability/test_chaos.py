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

# About 3 minutes of soak after the reference runs; a loaded 2-core machine needs far longer.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_a_short_chaos_soak_loses_nothing(tmp_path: Path) -> None:
    report_path = tmp_path / "chaos.json"
    argv = [
        sys.executable, "bench/chaos.py", "--minutes", str(size("CHAOS_MINUTES", 2)),
        "--jobs", str(size("CHAOS_JOBS", 50)), "--clips", "30", "--warm-up", "4",
        "--min-gap", "8", "--max-gap", "16", "--seed", "7", "--json", str(report_path),
    ]  # fmt: skip
    with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as soak:
        try:
            output, _ = soak.communicate(timeout=1700)
        except subprocess.TimeoutExpired:
            soak.terminate()  # the soak stops its farm and Redis on SIGTERM
            output, _ = soak.communicate(timeout=180)
    assert soak.returncode == 0, output[-6000:]
    report = json.loads(report_path.read_text())
    print(output[-2500:])
    assert sum(report["faults"].values()) >= 4, report["faults"]
    assert (report["lost"], report["duplicated"]) == (0, 0), report
    # Packing decodes a short clip a little differently now and then (2 of 460 in the 15-minute
    # run), and the 3-gram check also matches common phrases: a few are tolerated, and listed.
    assert report["wrong"] + report["leaks"] <= max(1, report["jobs"] // 20), report["problems"]
    assert report["succeeded"] == report["jobs"] > 0
    assert report["bad_inputs_typed"] == report["bad_inputs"]
    assert report["dead_letters"] >= report["garbage_pushed"]
    assert report["still_up"]
