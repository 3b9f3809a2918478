"""Which local paths a worker may read a job's audio from and write its result files to.

A job names a path to read and may name a directory to write, and the worker does both
with its own permissions. Without these checks a job could have ``/etc/passwd``, another
tenant's upload or a symlink out of the shared volume transcribed and its text handed
back, or have result files written over another tenant's results or the worker's own code.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from farm.errors import InvalidJobError, PermanentError, StorageAccessError, StorageNotFoundError


@dataclass(frozen=True)
class Roots:
    """The directories local inputs and outputs must stay in; none: anything goes."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    max_input_mb: int = 0  # 0: no size limit


def resolved(path: Path) -> Path:
    """``path`` with every symlink resolved; a loop or an unreadable directory is a permanent error."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # Python 3.11 raises RuntimeError for a symlink loop
        raise filesystem_error(path, exc) from exc


def filesystem_error(path: Path, exc: BaseException) -> PermanentError:
    """One typed, one-line error for anything the filesystem said about ``path``."""
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return StorageNotFoundError(f"no such file: {path}")
    if isinstance(exc, PermissionError):
        return StorageAccessError(f"permission denied: {path}")
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return StorageAccessError(f"{path}: symlink loop (too many levels of symbolic links)")
    if getattr(exc, "errno", None) == errno.ENAMETOOLONG:
        return InvalidJobError(f"path too long: {str(path)[:80]}...")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return StorageAccessError(f"cannot use {path}: {reason}")


def check_local_input(path: Path, roots: Roots) -> Path:
    """The path with every symlink resolved; a permanent error when it is off limits."""
    resolved_path = resolved(path)  # follows each link, so one inside a root cannot lead out of it
    if _outside(resolved_path, roots.inputs):
        # Refused before the existence check: the answer must not reveal what exists outside.
        raise StorageAccessError(f"{path} is outside the directories this farm reads inputs from (input_roots)")
    _check_size(resolved_path, roots.max_input_mb)
    return resolved_path


def check_local_output(path: Path, roots: Roots) -> Path:
    """Where a result file at ``path`` really lands; a permanent error when that is off limits."""
    target = resolved(path)  # an existing link in the path counts where it leads
    if _outside(target, roots.outputs):
        raise StorageAccessError(f"{path} is outside the directories this farm writes results to (output_roots)")
    return target


def check_output_directory(output: str, roots: Roots) -> None:
    """Refuse a job's local output directory before any work is spent on the job."""
    if output and urlparse(output).scheme in ("", "file"):
        check_local_output(Path(output.removeprefix("file://")).expanduser(), roots)


def _outside(target: Path, roots: tuple[str, ...]) -> bool:
    """No roots: anything goes. A root is a directory, not a string prefix (/x/a-evil is not in /x/a)."""
    # Resolved at each check, as a link a root goes through may change while the worker runs.
    allowed = [resolved(Path(root).expanduser()) for root in roots if root]
    return bool(allowed) and not any(target.is_relative_to(root) for root in allowed)


def _check_size(path: Path, limit_mb: int) -> None:
    try:
        if not limit_mb or not path.is_file():
            return
        size_mb = path.stat().st_size / 2**20
    except OSError as exc:
        raise filesystem_error(path, exc) from exc
    if size_mb > limit_mb:
        raise InvalidJobError(f"{path.name} is {size_mb:.0f} MiB, over the {limit_mb} MiB input limit (max_input_mb)")
