"""Which local files a worker may open: inside the configured roots, under the size limit.

A job names a path, and the worker reads it with its own permissions. Without this
check a job could have ``/etc/passwd``, another tenant's upload or a symlink out of the
shared volume transcribed and its text handed back.
"""

from __future__ import annotations

from pathlib import Path

from farm.config import Settings, get_settings
from farm.errors import InvalidJobError, StorageAccessError


def check_local_input(path: Path, settings: Settings | None = None) -> Path:
    """The path with every symlink resolved; a permanent error when it is off limits."""
    settings = settings or get_settings()
    resolved = path.resolve()  # follows each link, so one inside a root cannot lead out of it
    roots = allowed_roots(settings)
    if roots and not any(resolved.is_relative_to(root) for root in roots):
        # Refused before the existence check: the answer must not reveal what exists outside.
        raise StorageAccessError(f"{path} is outside the directories this farm reads inputs from (input_roots)")
    _check_size(resolved, settings.max_input_mb)
    return resolved


def allowed_roots(settings: Settings) -> list[Path]:
    """Resolved input_roots plus upload_dir; empty when input_roots is (anything goes)."""
    if not settings.input_roots:
        return []
    roots = [*settings.input_roots, settings.upload_dir]
    return [Path(root).expanduser().resolve() for root in roots if root]


def _check_size(path: Path, limit_mb: int) -> None:
    if not limit_mb or not path.is_file():
        return
    size_mb = path.stat().st_size / 2**20
    if size_mb > limit_mb:
        raise InvalidJobError(f"{path.name} is {size_mb:.0f} MiB, over the {limit_mb} MiB input limit (max_input_mb)")
