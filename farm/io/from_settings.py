"""The io values an entry point builds from the settings and hands down.

Only entry points (the worker runtime, CLI commands, the API app and the client) hold a
``Settings``; storage, roots and delivery see these small values instead, so nothing
below an entry point reads the environment or falls back to global settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from farm.io.roots import Roots
from farm.io.storage import S3Config

if TYPE_CHECKING:
    from farm.config import Settings


def s3_config(settings: Settings) -> S3Config:
    """The S3 part of the settings; empty strings mean "let boto3 decide"."""
    return S3Config(
        endpoint_url=settings.s3_endpoint_url or None,
        region=settings.s3_region or None,
        access_key_id=settings.s3_access_key_id or None,
        secret_access_key=settings.s3_secret_access_key or None,
        addressing_style=settings.s3_addressing_style,
        timeout_s=float(settings.s3_timeout_s),
    )


def roots_from(settings: Settings) -> Roots:
    """input_roots plus upload_dir, output_roots plus a local output_uri, and max_input_mb."""
    return Roots(
        inputs=(*settings.input_roots, settings.upload_dir) if settings.input_roots else (),
        outputs=(*settings.output_roots, _local_default(settings.output_uri)) if settings.output_roots else (),
        max_input_mb=settings.max_input_mb,
    )


def _local_default(output_uri: str) -> str:
    return output_uri.removeprefix("file://") if urlparse(output_uri).scheme in ("", "file") else ""
