"""Which local paths a worker may read a job's audio from and write its result files to.

A job names a path to read and may name a directory to write, and the worker does both
with its own permissions. Without these checks a job could have ``/etc/passwd``, another
tenant's upload or a symlink out of the shared volume transcribed and its text handed
back, or have result files written over another tenant's results or the worker's own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from farm.errors import InvalidJobError, StorageAccessError


@dataclass(frozen=True)
class Roots:
    """The directories local inputs and outputs must stay in; none: anything goes."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    max_input_mb: int = 0  # 0: no size limit


def check_local_input(path: Path, roots: Roots) -> Path:
    """The path with every symlink resolved; a permanent error when it is off limits."""
    resolved = path.resolve()  # follows each link, so one inside a root cannot lead out of it
    if _outside(resolved, roots.inputs):
        # Refused before the existence check: the answer must not reveal what exists outside.
        raise StorageAccessError(f"{path} is outside the directories this farm reads inputs from (input_roots)")
    _check_size(resolved, roots.max_input_mb)
    return resolved


def check_local_output(path: Path, roots: Roots) -> Path:
    """Where a result file at ``path`` really lands; a permanent error when that is off limits."""
    resolved = path.resolve()  # an existing link in the path counts where it leads
    if _outside(resolved, roots.outputs):
        raise StorageAccessError(f"{path} is outside the directories this farm writes results to (output_roots)")
    return resolved


def check_output_directory(output: str, roots: Roots) -> None:
    """Refuse a job's local output directory before any work is spent on the job."""
    if output and urlparse(output).scheme in ("", "file"):
        check_local_output(Path(output.removeprefix("file://")).expanduser(), roots)


def _outside(resolved: Path, roots: tuple[str, ...]) -> bool:
    """No roots: anything goes. A root is a directory, not a string prefix (/x/a-evil is not in /x/a)."""
    # Resolved at each check, as a link a root goes through may change while the worker runs.
    allowed = [Path(root).expanduser().resolve() for root in roots if root]
    return bool(allowed) and not any(resolved.is_relative_to(root) for root in allowed)


def _check_size(path: Path, limit_mb: int) -> None:
    if not limit_mb or not path.is_file():
        return
    size_mb = path.stat().st_size / 2**20
    if size_mb > limit_mb:
        raise InvalidJobError(f"{path.name} is {size_mb:.0f} MiB, over the {limit_mb} MiB input limit (max_input_mb)")
