"""``stop_process`` ends a process that will not stop on SIGTERM, and what it started."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from farm.serve.shutdown import stop_process

DEAF = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
# Ignores SIGTERM, starts a child that ignores it too, prints the child's pid, then waits.
STUBBORN = f"""
{DEAF}
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "{DEAF}; time.sleep(600)"])
print(child.pid, flush=True)
child.wait()
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purposes
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("own_group", [True, False], ids=["own-group", "shared-group"])
def test_a_process_that_ignores_sigterm_is_killed_with_its_children(own_group: bool) -> None:
    process = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, start_new_session=own_group)
    assert process.stdout is not None
    child = int(process.stdout.readline())
    started = time.monotonic()
    stop_process(process, timeout=0.5)
    assert process.returncode == -9 and time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_an_exited_process_is_left_as_it_is() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    stop_process(process, timeout=0.5)
    assert process.returncode == 3
