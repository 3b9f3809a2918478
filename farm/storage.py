"""Where audio comes from: local paths or ``s3://`` objects (boto3).

Back-end failures become typed errors: a missing object or denied access is
permanent; a timeout or connection failure is retryable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from farm.errors import (
    InvalidJobError,
    StorageAccessError,
    StorageNotFoundError,
    StorageUnavailableError,
)


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing_style: str = "auto"


class Storage(Protocol):
    def read(self, reference: str) -> bytes | Path:
        """Return the object's bytes, or a local path the decoder can open directly."""
        ...


class LocalStorage:
    def read(self, reference: str) -> Path:
        path = Path(reference.removeprefix("file://")).expanduser()
        if not path.is_file():
            raise StorageNotFoundError(f"no such file: {path}")
        try:
            with open(path, "rb"):
                return path
        except PermissionError as exc:
            raise StorageAccessError(f"permission denied: {path}") from exc


class S3Storage:
    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._client: Any = None

    def read(self, reference: str) -> bytes:
        bucket, key = split_s3_uri(reference)
        body: bytes = self._call(reference, lambda: self._s3().get_object(Bucket=bucket, Key=key)["Body"].read())
        return body

    def _s3(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.config.endpoint_url,
                region_name=self.config.region,
                aws_access_key_id=self.config.access_key_id,
                aws_secret_access_key=self.config.secret_access_key,
                config=Config(s3={"addressing_style": self.config.addressing_style}, retries={"max_attempts": 3}),
            )
        return self._client

    def _call(self, reference: str, action: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return action()
        except ClientError as exc:
            raise _client_error(reference, exc) from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError(f"storage unavailable for {reference}: {type(exc).__name__}") from exc


def _client_error(reference: str, exc: Any) -> Exception:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
        return StorageNotFoundError(f"no such object: {reference}")
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return StorageAccessError(f"access denied: {reference}")
    return StorageUnavailableError(f"storage error {code or 'unknown'} for {reference}")


def split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise InvalidJobError(f"not an s3://bucket/key URI: {uri}")
    return parsed.netloc, parsed.path.lstrip("/")


def storage_for(reference: str, s3: S3Config) -> Storage:
    scheme = urlparse(reference).scheme
    if scheme == "s3":
        return S3Storage(s3)
    if scheme in ("", "file"):
        return LocalStorage()
    raise InvalidJobError(f"unsupported audio reference scheme {scheme!r}: use a path or s3:// URI")
