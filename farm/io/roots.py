"""Which local paths a worker may read a job's audio from and write its result files to.

A job names a path to read and may name a directory to write, and the worker does both
with its own permissions. Without these checks a job could have ``/etc/passwd``, another
tenant's upload or a symlink out of the shared volume transcribed and its text handed
back, or have result files written over another tenant's results or the worker's own code.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from farm.config import Settings, get_settings
from farm.errors import InvalidJobError, StorageAccessError


def check_local_input(path: Path, settings: Settings | None = None) -> Path:
    """The path with every symlink resolved; a permanent error when it is off limits."""
    settings = settings or get_settings()
    resolved = path.resolve()  # follows each link, so one inside a root cannot lead out of it
    if _outside(resolved, allowed_roots(settings)):
        # Refused before the existence check: the answer must not reveal what exists outside.
        raise StorageAccessError(f"{path} is outside the directories this farm reads inputs from (input_roots)")
    _check_size(resolved, settings.max_input_mb)
    return resolved


def check_local_output(path: Path, settings: Settings | None = None) -> Path:
    """Where a result file at ``path`` really lands; a permanent error when that is off limits."""
    settings = settings or get_settings()
    resolved = path.resolve()  # an existing link in the path counts where it leads
    if _outside(resolved, allowed_output_roots(settings)):
        raise StorageAccessError(f"{path} is outside the directories this farm writes results to (output_roots)")
    return resolved


def check_output_directory(output: str, settings: Settings | None = None) -> None:
    """Refuse a job's local output directory before any work is spent on the job."""
    if output and urlparse(output).scheme in ("", "file"):
        check_local_output(Path(output.removeprefix("file://")).expanduser(), settings)


def allowed_roots(settings: Settings) -> list[Path]:
    """Resolved input_roots plus upload_dir; empty when input_roots is (anything goes)."""
    return _resolved([*settings.input_roots, settings.upload_dir]) if settings.input_roots else []


def allowed_output_roots(settings: Settings) -> list[Path]:
    """Resolved output_roots plus a local output_uri; empty when output_roots is (anything goes)."""
    if not settings.output_roots:
        return []
    local_default = urlparse(settings.output_uri).scheme in ("", "file")
    default = settings.output_uri.removeprefix("file://") if local_default else ""
    return _resolved([*settings.output_roots, default])


def _outside(resolved: Path, roots: list[Path]) -> bool:
    """No roots: anything goes. A root is a directory, not a string prefix (/x/a-evil is not in /x/a)."""
    return bool(roots) and not any(resolved.is_relative_to(root) for root in roots)


def _resolved(roots: list[str]) -> list[Path]:
    return [Path(root).expanduser().resolve() for root in roots if root]


def _check_size(path: Path, limit_mb: int) -> None:
    if not limit_mb or not path.is_file():
        return
    size_mb = path.stat().st_size / 2**20
    if size_mb > limit_mb:
        raise InvalidJobError(f"{path.name} is {size_mb:.0f} MiB, over the {limit_mb} MiB input limit (max_input_mb)")
