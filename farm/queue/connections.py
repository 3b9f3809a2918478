"""Every Redis client of the farm comes from here, with the TLS settings applied
(and, for a ``sentinel://`` URL, through the Sentinels to the current master).

Producers, workers, the API and the metrics endpoint talk to the same Redis; a client
built anywhere else would miss the ``redis_tls_*`` settings on a ``rediss://`` broker
(and, say, fail open where it guards a webhook against being sent twice).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from farm.queue.sentinel import SentinelUrl, is_sentinel, parse_sentinel_url

if TYPE_CHECKING:
    import redis

    from farm.config import Settings

CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
DEFAULT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class RedisSettings:
    """Where a Redis lives and how to reach it (a password travels in the URL)."""

    url: str
    ca_certs: str = ""
    certfile: str = ""
    keyfile: str = ""
    cert_reqs: str = "required"

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> RedisSettings:
        """The broker's Redis, or ``url`` (e.g. the result backend), with the farm's TLS settings."""
        return cls(
            url=url or settings.broker_url,
            ca_certs=settings.redis_tls_ca_certs,
            certfile=settings.redis_tls_certfile,
            keyfile=settings.redis_tls_keyfile,
            cert_reqs=settings.redis_tls_cert_reqs,
        )

    @property
    def tls(self) -> bool:
        return self.url.startswith("rediss://")

    def ssl_options(self) -> dict[str, Any]:
        """redis-py's (and Celery's ``broker_use_ssl``) TLS options."""
        files = {"ssl_ca_certs": self.ca_certs, "ssl_certfile": self.certfile, "ssl_keyfile": self.keyfile}
        return {"ssl_cert_reqs": CERT_REQS[self.cert_reqs], **{key: path for key, path in files.items() if path}}


def new_redis(where: RedisSettings, timeout_s: float = DEFAULT_TIMEOUT_S) -> redis.Redis:
    """A new client (its own connection pool); behind Sentinel, one that follows the master."""
    import redis

    if is_sentinel(where.url):
        return _sentinel_master(parse_sentinel_url(where.url), timeout_s)
    extra = where.ssl_options() if where.tls else {}
    return redis.Redis.from_url(where.url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, **extra)


def _sentinel_master(target: SentinelUrl, timeout_s: float) -> redis.Redis:
    """A client whose every new connection asks the Sentinels where the master is now."""
    from redis.sentinel import Sentinel

    timeouts = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    sentinels = Sentinel(list(target.hosts), sentinel_kwargs=timeouts, **timeouts)  # type: ignore[no-untyped-call]
    master: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
        target.master, password=target.password, db=target.db
    )
    return master


@cache
def shared_redis(where: RedisSettings) -> redis.Redis:
    """One client (and connection pool) per Redis for the whole process."""
    return new_redis(where)


def reachable(where: RedisSettings, timeout_s: float = 1.0) -> bool:
    """True when the Redis at ``where`` answers PING."""
    import redis

    try:
        client = new_redis(where, timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False
