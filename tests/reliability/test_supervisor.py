"""``farm worker``'s supervisor: a crash loop is given up, deaths spread over time never are.

Issue 16: the restart counter never reset, so six OOM kills spread over months stopped
the farm for good. The children here are real processes that die the way workers do.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.serve.devices import Device
from farm.serve.restarts import RestartPolicy, RestartRecord, exit_cause
from farm.serve.supervisor import Child, Supervisor, worker_env


def _child(script: str, starts: Path) -> Child:
    """A child that appends a line to ``starts`` each time it starts, then runs ``script``."""
    code = f"open({str(starts)!r}, 'a').write('started\\n'); {script}"
    argv = [sys.executable, "-c", code, "--hostname", "cpu@supervisor-test"]  # a node name, as Celery gets
    return Child(Device("cpu", None), argv, dict(os.environ))


@pytest.fixture()
def own_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _starts(path: Path) -> int:
    return path.read_text().count("started") if path.exists() else 0


def test_a_crash_loop_is_given_up_within_the_window(
    tmp_path: Path, own_signals: None, caplog: pytest.LogCaptureFixture
) -> None:
    starts = tmp_path / "starts"
    policy = RestartPolicy(max_restarts=3, window_s=60, first_delay_s=0.05, max_delay_s=0.2)
    with caplog.at_level(logging.INFO, logger="farm.serve.supervisor"):
        code = Supervisor([_child("raise SystemExit(3)", starts)], policy).run()
    assert code == 1 and _starts(starts) == 1 + 3
    assert caplog.text.count("exited with code 3") == 4 and "giving up" in caplog.text


def test_deaths_spread_over_time_never_give_up(
    tmp_path: Path, own_signals: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Each death comes at least 0.45 s after the last, so "at most 2 restarts in 0.8 s" is never
    # exceeded however many there are in all (main gave up after the 5th restart, ever).
    starts = tmp_path / "starts"
    policy = RestartPolicy(max_restarts=2, window_s=0.8, first_delay_s=0.05, max_delay_s=0.05)
    die_late = "import os, time; time.sleep(0.45); os.kill(os.getpid(), 9)"
    returned = threading.Event()
    watcher = threading.Thread(target=_stop_after, args=(starts, 11, returned), daemon=True)
    watcher.start()
    with caplog.at_level(logging.INFO, logger="farm.serve.supervisor"):
        Supervisor([_child(die_late, starts)], policy).run()
    returned.set()
    assert _starts(starts) >= 11, caplog.text  # 10 kills in a row, spread over time
    assert "giving up" not in caplog.text and caplog.text.count("killed by SIGKILL") >= 10


def _stop_after(starts: Path, count: int, returned: threading.Event) -> None:
    """SIGTERM this process (the supervisor's handler) once ``count`` starts were seen (2 min at most)."""
    deadline = time.monotonic() + 120
    while _starts(starts) < count and time.monotonic() < deadline:
        if returned.wait(0.05):
            return  # the supervisor gave up on its own: nobody to stop
    os.kill(os.getpid(), signal.SIGTERM)


def test_the_backoff_grows_and_a_healthy_run_resets_it() -> None:
    record = RestartRecord(RestartPolicy(max_restarts=10, window_s=1000, first_delay_s=1, max_delay_s=4, healthy_s=60))
    delays = [record.next_delay(now=t, uptime_s=1) for t in range(5)]
    assert delays == [1, 2, 4, 4, 4]
    assert record.next_delay(now=100, uptime_s=61) == 1 and len(record.times) == 1


def test_a_window_of_restarts_is_forgotten() -> None:
    record = RestartRecord(RestartPolicy(max_restarts=2, window_s=10, first_delay_s=0, max_delay_s=0, healthy_s=999))
    assert [record.next_delay(now=t, uptime_s=0) for t in (0, 1, 2)] == [0, 0, None]
    assert record.next_delay(now=12, uptime_s=0) == 0  # the first two are older than the window


def test_exit_causes_name_the_code_or_the_signal() -> None:
    assert exit_cause(3) == "exited with code 3"
    assert exit_cause(-9) == "killed by SIGKILL" and exit_cause(-15) == "killed by SIGTERM"


def test_workers_get_glibc_settings_that_keep_memory_flat_unless_the_operator_says_otherwise() -> None:
    # Issue 16: the worker tree's RSS grew with glibc's defaults (bench/memory.py).
    env = worker_env(Device("cpu", None), 2, base={})
    assert env["MALLOC_ARENA_MAX"] == "2"
    # A fixed mmap threshold kept RSS flat too, but cost a third of the engine's speed
    # (farm/inference/heap.py): the batcher trims the heap after each round instead.
    assert "MALLOC_MMAP_THRESHOLD_" not in env
    assert worker_env(Device("cpu", None), 2, base={"MALLOC_ARENA_MAX": "4"})["MALLOC_ARENA_MAX"] == "4"
