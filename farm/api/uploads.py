"""Uploaded audio on its way to a worker in another pod, which shares only Redis and S3.

An upload travels the first way that reaches every worker:

1. ``staging_bucket`` set: copied to the bucket; the job carries its ``s3://`` URI.
2. Up to ``inline_audio_limit`` bytes: inside the job message, through Redis.
3. ``upload_dir`` set (a volume every worker mounts at the same path, e.g. the chart's
   ReadWriteMany claim): saved there; the job carries the path.
4. Otherwise, outside production only (one host): the system temporary directory.

A production API with none of these refuses larger uploads with a 413 that says what to
set, rather than queue a path no worker can open. An upload stays until its job ends:
the synchronous routes remove it once the job is done, never while it may still be queued
(a timed-out request leaves it for ``sweep``, which removes uploads older than
``result_expires``, when their results are gone too).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from farm.api.errors import ApiError
from farm.client import Client, Job
from farm.config import Settings
from farm.io.from_settings import s3_config
from farm.io.storage import S3Storage, staging_uri

UPLOADS_FOLDER = "whisperfarm-uploads"
CHUNK = 1 << 20
MAX_NAME = 120


@dataclass(frozen=True)
class Upload:
    """What a job is given (an ``s3://`` URI, the bytes, or a shared path) and what to clean up."""

    source: str | bytes
    name: str
    local: Path | None = None  # this API's copy on disk, removed once the job ends
    staged: str = ""  # the staging-bucket object, removed once a synchronous job ends


def save(stream: BinaryIO, filename: str | None, settings: Settings) -> Upload:
    """Put an upload where every worker can read it (see the module docstring)."""
    name = safe_name(filename)
    if settings.staging_bucket:
        return _stage(stream, name, settings)
    size = _size(stream)
    if size <= settings.inline_audio_limit:
        return Upload(stream.read(), name)
    if not settings.upload_dir and settings.env == "production":
        raise ApiError(413, _unshareable(size, settings), "upload_too_large", "file")
    path = _write(stream, upload_root(settings), name)
    return Upload(str(path), name, local=path)


def _unshareable(size: int, settings: Settings) -> str:
    return (
        f"{size} bytes is over inline_audio_limit ({settings.inline_audio_limit}) and this farm has no "
        "staging_bucket or upload_dir its workers share; send a smaller file or an s3:// uri"
    )


def _stage(stream: BinaryIO, name: str, settings: Settings) -> Upload:
    path = _write(stream, Path(tempfile.gettempdir()) / UPLOADS_FOLDER, name)
    uri = staging_uri(settings.staging_bucket, name)
    try:
        S3Storage(s3_config(settings)).upload_file(path, uri)
    finally:
        _remove_folder(path)
    return Upload(uri, name, staged=uri)


def _size(stream: BinaryIO) -> int:
    start = stream.tell()
    end = stream.seek(0, os.SEEK_END)
    stream.seek(start)
    return end - start


def _write(stream: BinaryIO, root: Path, name: str) -> Path:
    folder = root / uuid.uuid4().hex  # its own folder, so the worker sees the user's file name
    folder.mkdir(parents=True)
    target = folder / name
    with target.open("wb") as out:
        shutil.copyfileobj(stream, out, CHUNK)
    return target


def upload_root(settings: Settings) -> Path:
    return Path(settings.upload_dir or tempfile.gettempdir()).expanduser() / UPLOADS_FOLDER


def safe_name(filename: str | None) -> str:
    """The last path component, without characters a shell or URL would trip on."""
    name = re.sub(r"[^\w.\-]", "_", Path(filename or "").name).lstrip(".")
    return name[-MAX_NAME:] or "audio"


def submit(client: Client, upload: Upload, **kwargs: Any) -> Job:
    """Queue a job for ``upload``; an upload whose job could not be queued is removed at once."""
    try:
        return client.submit(upload.source, name=upload.name, **kwargs)
    except BaseException:
        discard(upload, client.settings)
        raise


def release(upload: Upload, job: Job, settings: Settings) -> None:
    """Remove ``upload`` if its job has ended (or is an earlier job, reused); one still
    queued or running keeps it."""
    if job.reused or job.status().done:
        discard(upload, settings)


def discard(upload: Upload, settings: Settings) -> None:
    if upload.local is not None:
        _remove_folder(upload.local)
    if upload.staged:
        S3Storage(s3_config(settings)).delete(upload.staged)


def _remove_folder(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def sweep(settings: Settings, now: float | None = None) -> None:
    """Remove uploads older than ``result_expires``: their jobs' results are gone too."""
    cutoff = (now or time.time()) - settings.result_expires
    root = upload_root(settings)
    if not root.is_dir():
        return
    for folder in root.iterdir():
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:
            continue  # another API process swept it first
