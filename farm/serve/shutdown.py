"""Stopping a process that may have started others (``farm worker`` and its Celery children):
politely first, then for good, so that nothing it started outlives it."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (``farm worker`` forwards it: Celery's warm shutdown lets running jobs
    finish), then, if it has not exited after ``timeout`` seconds, ``kill_tree``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(process)
        process.wait()


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the process and everything under it: its whole process group where it
    leads one (that reaches children whose parent is already gone too), else each of its
    descendants as they stand, found with psutil."""
    if os.getpgid(process.pid) == process.pid:
        os.killpg(process.pid, signal.SIGKILL)
        return
    import psutil  # only this path needs it (a dev and bench dependency, as for PeakMemory)

    for child in psutil.Process(process.pid).children(recursive=True):
        child.kill()
    process.kill()
