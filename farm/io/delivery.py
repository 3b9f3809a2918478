"""A finished job's result files: rendered, stored, and handed out as presigned URLs.

A job that names an ``output`` (or asks for ``formats`` when ``output_uri`` is set) gets
``<output>/<job id>.<format>`` for each format, in S3 or a directory the workers share
(written by the ``ResultFiles`` hook, farm/io/job_end.py); the result then lists them
under ``"outputs"``. Producers turn S3 outputs into presigned URLs (``presigned_urls``)
so users need no credentials to fetch them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from farm.io.roots import Roots
from farm.io.storage import S3Config, S3Storage, storage_for
from farm.job.formats import render

CONTENT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
}
DEFAULT_FORMATS = ("json",)


def output_location(base: str, job_id: str, fmt: str) -> str:
    return f"{base.rstrip('/')}/{job_id}.{fmt}"


def write_outputs(
    result: Mapping[str, Any], job_id: str, base: str, formats: tuple[str, ...], s3: S3Config, roots: Roots
) -> dict[str, str]:
    """Render ``result`` in each format and store it; return where each one went."""
    written = {}
    for fmt in formats:
        uri = output_location(base, job_id, fmt)
        storage_for(uri, s3, roots).write(uri, render(result, fmt).encode("utf-8"), CONTENT_TYPES[fmt])
        written[fmt] = uri
    return written


def presigned_urls(outputs: Mapping[str, str], s3: S3Config, expires_s: int) -> dict[str, str]:
    """HTTP(S) URLs for S3 outputs (anyone holding one may GET it until it expires)."""
    storage = S3Storage(s3)
    return {fmt: storage.presign(uri, expires_s) for fmt, uri in outputs.items() if uri.startswith("s3://")}
