"""Uploaded audio on its way to a worker: saved where workers can read it, or staged in S3.

Each upload gets its own folder under ``<upload_dir>/whisperfarm-uploads`` so the
worker sees the user's file name. With ``upload_to_staging`` the client copies the file
to the staging bucket and the local copy goes at once; otherwise the folder stays until
the job ends (synchronous requests) or ages past ``result_expires`` (swept on upload).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from farm.client import Client, Job
from farm.config import Settings

UPLOADS_FOLDER = "whisperfarm-uploads"
CHUNK = 1 << 20
MAX_NAME = 120


def upload_root(settings: Settings) -> Path:
    return Path(settings.upload_dir or tempfile.gettempdir()).expanduser() / UPLOADS_FOLDER


def save(stream: BinaryIO, filename: str | None, settings: Settings) -> Path:
    folder = upload_root(settings) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    target = folder / safe_name(filename)
    with target.open("wb") as out:
        shutil.copyfileobj(stream, out, CHUNK)
    return target


def safe_name(filename: str | None) -> str:
    """The last path component, without characters a shell or URL would trip on."""
    name = re.sub(r"[^\w.\-]", "_", Path(filename or "").name).lstrip(".")
    return name[-MAX_NAME:] or "audio"


def submit(client: Client, path: Path, **kwargs: Any) -> Job:
    """Submit a saved upload; a staged upload's local copy is no longer needed after."""
    try:
        return client.submit(path, **kwargs)
    finally:
        if client.settings.upload_to_staging:
            discard(path)


def discard(path: Path) -> None:
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
