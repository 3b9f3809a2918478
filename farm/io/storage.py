"""Where audio comes from and results go: local paths or ``s3://`` objects (boto3).

Back-end failures become typed errors: a missing bucket or object and denied access are
permanent; a timeout, a refused connection or a 5xx from the store is retryable.
Credentials live only in ``S3Config`` (repr hides them) and never reach a message.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlparse

from farm.errors import (
    InvalidJobError,
    StorageAccessError,
    StorageNotFoundError,
    StorageUnavailableError,
)
from farm.io.roots import Roots, check_local_input, check_local_output, filesystem_error, resolved

T = TypeVar("T")
_client_lock = threading.Lock()

# Staged uploads land under this key prefix, one random folder per upload, so two
# producers uploading "call.wav" never overwrite each other.
STAGING_PREFIX = "uploads"

NO_CREDENTIALS = (
    "set s3_access_key_id and s3_secret_access_key (FARM_S3_ACCESS_KEY_ID / FARM_S3_SECRET_ACCESS_KEY, "
    "or .secrets.toml), or give the worker AWS credentials (environment, profile or instance role)"
)
_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_DENIED = frozenset(
    {"AccessDenied", "403", "401", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "Forbidden"}
)


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    addressing_style: str = "auto"
    timeout_s: float = 30.0
    max_attempts: int = 3


class Storage(Protocol):
    def read(self, reference: str) -> bytes | Path:
        """Return the object's bytes, or a local path the decoder can open directly."""
        ...

    def write(self, reference: str, data: bytes, content_type: str) -> None:
        """Create or replace the object at ``reference``."""
        ...


class LocalStorage:
    """Files on this machine, inside the farm's roots only."""

    def __init__(self, roots: Roots) -> None:
        self.roots = roots

    def read(self, reference: str) -> Path:
        return readable_file(check_local_input(_local_path(reference), self.roots))

    def write(self, reference: str, data: bytes, content_type: str) -> None:
        path = check_local_output(_local_path(reference), self.roots)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as exc:  # full, read-only or gone: the same next time
            raise filesystem_error(path, exc) from exc


def local_file(reference: str) -> Path:
    """A producer's local audio file, resolved; any filesystem error is a typed, one-line PermanentError."""
    path = resolved(_local_path(reference))
    try:
        if not path.is_file():
            raise StorageNotFoundError(f"no such file: {reference}")
        return path
    except OSError as exc:
        raise filesystem_error(Path(reference), exc) from exc


def readable_file(path: Path) -> Path:
    try:
        if not path.is_file():
            raise StorageNotFoundError(f"no such file: {path}")
        with open(path, "rb"):
            return path
    except OSError as exc:
        raise filesystem_error(path, exc) from exc


class S3Storage:
    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._client: Any = None

    def read(self, reference: str) -> bytes:
        bucket, key = split_s3_uri(reference)
        return self._call(reference, lambda: bytes(self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()))

    def write(self, reference: str, data: bytes, content_type: str) -> None:
        bucket, key = split_s3_uri(reference)
        put = {"Bucket": bucket, "Key": key, "Body": data, "ContentType": content_type}
        self._call(reference, lambda: self._s3().put_object(**put))

    def upload_file(self, path: Path, reference: str) -> None:
        bucket, key = split_s3_uri(reference)
        with open(path, "rb") as body:
            self._call(reference, lambda: self._s3().put_object(Bucket=bucket, Key=key, Body=body))

    def delete(self, reference: str) -> None:
        bucket, key = split_s3_uri(reference)
        self._call(reference, lambda: self._s3().delete_object(Bucket=bucket, Key=key))

    def presign(self, reference: str, expires_s: int) -> str:
        """A URL anyone may GET the object with until it expires; no request is made."""
        bucket, key = split_s3_uri(reference)
        params = {"Bucket": bucket, "Key": key}
        url: str = self._call(
            reference, lambda: self._s3().generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)
        )
        return url

    def _s3(self) -> Any:
        if self._client is None:
            self._client = _s3_client(self.config)
        return self._client

    def _call(self, reference: str, action: Callable[[], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

        try:
            return action()
        except ClientError as exc:
            raise _client_error(reference, exc) from exc
        except (NoCredentialsError, PartialCredentialsError) as exc:  # configuration: asking again cannot help
            raise StorageAccessError(f"no S3 credentials for {reference}: {NO_CREDENTIALS}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError(f"storage unavailable for {reference}: {type(exc).__name__}") from exc


@cache
def _s3_client(config: S3Config) -> Any:
    # boto3 clients are thread-safe but creating them is not (the default session's
    # loaders race), and each costs tens of milliseconds: one per configuration.
    with _client_lock:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            config=Config(
                s3={"addressing_style": config.addressing_style},
                retries={"max_attempts": config.max_attempts, "mode": "standard"},
                connect_timeout=config.timeout_s,
                read_timeout=config.timeout_s,
            ),
        )


def _client_error(reference: str, exc: Any) -> Exception:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in _NOT_FOUND or status == 404:
        return StorageNotFoundError(f"no such object: {reference} ({code or status})")
    if code in _DENIED or status in (401, 403):
        return StorageAccessError(f"access denied: {reference} ({code or status})")
    if 400 <= status < 500 and status not in (408, 429):
        # The store understood and refused: asking again gets the same answer.
        return StorageAccessError(f"storage refused {reference}: {code or status}")
    return StorageUnavailableError(f"storage error {code or status or 'unknown'} for {reference}")


def _local_path(reference: str) -> Path:
    return Path(reference.removeprefix("file://")).expanduser()


def split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise InvalidJobError(f"not an s3://bucket/key URI: {uri}")
    return parsed.netloc, parsed.path.lstrip("/")


def staging_uri(bucket: str, name: str) -> str:
    """A fresh ``s3://`` key in the staging bucket for a file called ``name``."""
    safe = Path(name).name or "audio"
    return f"s3://{bucket}/{STAGING_PREFIX}/{uuid.uuid4().hex}/{safe}"


def storage_for(reference: str, s3: S3Config, roots: Roots) -> Storage:
    scheme = urlparse(reference).scheme
    if scheme == "s3":
        return S3Storage(s3)
    if scheme in ("", "file"):
        return LocalStorage(roots)
    raise InvalidJobError(f"unsupported audio reference scheme {scheme!r}: use a path or s3:// URI")
