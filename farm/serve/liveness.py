"""Is ``farm worker`` alive? Answered from heartbeat files, never through Redis.

A liveness check that pings through the broker restarts every worker when Redis is down
for a few minutes (models reload, running jobs wait for the visibility timeout). So:
``farm worker`` writes ``<run dir>/worker.json`` (its pid and the node names of its
processes) and touches it while its loop runs; each Celery worker process touches
``<run dir>/<node name>`` from a heartbeat thread started once it is ready (its model
loaded). ``farm probe live`` checks that the supervisor and every node beat recently.
The run directory is the container's temporary directory (or ``WHISPERFARM_RUN_DIR``);
the probe runs in the same container, so it sees the same one.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

RUN_DIR_ENV = "WHISPERFARM_RUN_DIR"  # not FARM_*: that prefix is for settings
PLAN_FILE = "worker.json"
BEAT_S = 5.0
STALE_S = 30.0  # six missed beats: the process is stuck, not busy


@dataclass(frozen=True)
class Plan:
    """What the supervisor runs: its pid and its worker processes' node names."""

    pid: int
    nodes: tuple[str, ...]
    started: float


@dataclass(frozen=True)
class Verdict:
    alive: bool
    reason: str


def run_dir() -> Path:
    return Path(os.environ.get(RUN_DIR_ENV) or Path(tempfile.gettempdir()) / "whisperfarm-run")


def write_plan(nodes: list[str], directory: Path | None = None) -> Path:
    folder = directory or run_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PLAN_FILE
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"pid": os.getpid(), "nodes": nodes, "started": time.time()}))
    partial.replace(path)
    return path


def read_plan(directory: Path | None = None) -> Plan | None:
    try:
        raw = json.loads(((directory or run_dir()) / PLAN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return Plan(int(raw["pid"]), tuple(str(n) for n in raw["nodes"]), float(raw["started"]))


def remove_plan(directory: Path | None = None) -> None:
    ((directory or run_dir()) / PLAN_FILE).unlink(missing_ok=True)


def beat(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def start_heartbeat(node: str, directory: Path | None = None, interval_s: float = BEAT_S) -> threading.Thread:
    """Touch ``<run dir>/<node>`` every ``interval_s`` from a daemon thread of this process."""
    path = (directory or run_dir()) / node

    def loop() -> None:
        while True:
            beat(path)
            time.sleep(interval_s)

    thread = threading.Thread(target=loop, name=f"heartbeat-{node}", daemon=True)
    thread.start()
    return thread


def check(directory: Path | None = None, now: float | None = None, stale_s: float = STALE_S) -> Verdict:
    """Alive when the supervisor runs and beat, and every node beat, within ``stale_s``."""
    folder = directory or run_dir()
    plan = read_plan(folder)
    if plan is None:
        return Verdict(False, f"farm worker is not running here (no {folder / PLAN_FILE})")
    if not _pid_alive(plan.pid):
        return Verdict(False, f"farm worker (pid {plan.pid}) has exited")
    moment = time.time() if now is None else now
    for name in ("worker.json", *plan.nodes):
        age = _age(folder / name, moment, plan.started)
        if age is None:
            return Verdict(False, f"{name} has not started yet (model loading?)")
        if age > stale_s:
            return Verdict(False, f"{name} has not answered for {age:.0f} s")
    return Verdict(True, f"alive: {', '.join(plan.nodes)}")


def _age(path: Path, now: float, since: float) -> float | None:
    """Seconds since ``path`` was touched, or None when it was not touched since ``since``."""
    try:
        touched = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return None if touched < since - 1 else now - touched


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return _signal_alive(pid)
    return state not in ("Z", "X")


def _signal_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
