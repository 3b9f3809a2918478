"""Redis behind Sentinel: ``sentinel://`` URLs for the broker and the result backend.

A farm that must outlive its Redis master points ``broker_url`` (and so the result
backend) at the Sentinels, naming the master they watch::

    sentinel://:password@s1:26379;sentinel://s2:26379;sentinel://s3:26379/0?master_name=farm

Celery and kombu take the Sentinel list and ``master_name`` as a transport option; the
farm's own clients (``farm.queue.connections``) ask the Sentinels for the master on each
connection. After a failover everyone reconnects to the promoted replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlparse

from farm.errors import ConfigError

SCHEME = "sentinel"
DEFAULT_PORT = 26379


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed ``sentinel://`` URL: where the Sentinels are and which master to ask for."""

    hosts: tuple[tuple[str, int], ...]
    master: str
    password: str | None
    db: int
    query: str  # what else the URL's query held, passed on to Celery

    def celery_url(self) -> str:
        """The URL in the form Celery and kombu read (``master_name`` goes to the transport options)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        hosts = ";".join(f"{SCHEME}://{auth}{host}:{port}/{self.db}" for host, port in self.hosts)
        return f"{hosts}?{self.query}" if self.query else hosts


def is_sentinel(url: str) -> bool:
    return url.startswith(f"{SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Split ``url``; a missing ``master_name`` or a malformed host is a ConfigError."""
    base, _, query = url.partition("?")
    params = dict(parse_qsl(query))
    master = params.pop("master_name", "")
    if not master:
        raise ConfigError("broker_url: a sentinel:// URL needs ?master_name=<the master the Sentinels watch>")
    hosts, password, db = [], None, 0
    for part in base.split(";"):
        parsed = urlparse(part.strip())
        if parsed.scheme != SCHEME or not parsed.hostname:
            raise ConfigError(f"broker_url: {SCHEME}://host:port expected between the semicolons, not {part!r}")
        hosts.append((parsed.hostname, parsed.port or DEFAULT_PORT))
        password = password or (unquote(parsed.password) if parsed.password else None)
        db = int(parsed.path.strip("/") or db)
    return SentinelUrl(tuple(hosts), master, password, db, urlencode(params))
