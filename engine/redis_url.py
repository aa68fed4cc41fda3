"""REDIS_URL's forms: plain URLs, and Redis Sentinel as ``redis+sentinel://`` (engine.connection makes the clients).

``redis+sentinel://[:password@]host:port[,host:port…]/service_name[/db][?option=value&…]`` is the form
rq-dashboard reads (through redis-sentinel-url); the password is the data nodes'. Options (all optional):

- ``ssl=true``: TLS to the data nodes (certificates checked unless REDIS_TLS_VERIFY=false);
- ``sentinel_password``: the Sentinels' own password (``requirepass`` in sentinel.conf);
- ``socket_connect_timeout``: seconds to connect to a data node (default 1);
- ``sentinel_socket_timeout``: seconds a Sentinel may take to answer (default 0.5; the next one is asked then).

"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
_FLOAT_OPTIONS = ("socket_connect_timeout", "sentinel_socket_timeout")
_OPTIONS = (*_FLOAT_OPTIONS, "ssl", "sentinel_password")


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    ssl: bool = False
    socket_connect_timeout: float = 1.0
    sentinel_socket_timeout: float = 0.5


def is_sentinel(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelURL:
    """The URL's parts; ValueError says what is wrong."""
    parsed = urlparse(url)
    userinfo, _, hosts = parsed.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = tuple(_host_port(part) for part in hosts.split(",") if part)
    if not sentinels:
        raise ValueError(f"no Sentinel host in {_safe(url)!r}")
    path = [unquote(part) for part in parsed.path.split("/") if part]
    if not path or len(path) > 2:
        raise ValueError("the path must be /service_name or /service_name/db, e.g. redis+sentinel://h:26379/mymaster/0")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"the db must be a whole number, got {path[1]!r}")
    options: dict[str, Any] = {}
    for name, values in parse_qs(parsed.query, keep_blank_values=True).items():
        if name not in _OPTIONS:
            raise ValueError(f"unknown option {name!r}; known: {', '.join(_OPTIONS)}")
        options[name] = _option(name, values[-1])
    return SentinelURL(sentinels, path[0], int(path[1]) if len(path) == 2 else 0, unquote(username) or None,
                       unquote(password) or None, **options)


def _host_port(part: str) -> tuple[str, int]:
    host, _, port = part.rpartition(":") if ":" in part else (part, "", str(SENTINEL_PORT))
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{part!r} is not host:port")
    return host, int(port)


def _option(name: str, raw: str) -> Any:
    if name == "ssl":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"ssl must be true or false, got {raw!r}")
        return raw.lower() in ("true", "1")
    if name in _FLOAT_OPTIONS:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
        if not 0 < value <= 60:
            raise ValueError(f"{name} must be between 0 and 60 seconds, got {raw!r}")
        return value
    return raw


def _safe(url: str) -> str:
    """The URL without its credentials, for messages."""
    parsed = urlparse(url)
    return parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl()


def validate(raw: str) -> str:
    """A redis://, rediss://, unix:// or redis+sentinel:// URL (the settings' parser)."""
    parsed = urlparse(raw)
    if parsed.scheme == SENTINEL_SCHEME:
        parse_sentinel_url(raw)
        return raw
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"scheme must be redis://, rediss://, unix:// or redis+sentinel://, got {_safe(raw)!r}")
    if parsed.scheme == "unix" and not parsed.path:
        raise ValueError("unix:// URL needs a socket path, e.g. unix:///path/to/redis.sock")
    if parsed.scheme != "unix" and not parsed.hostname:
        raise ValueError(f"no host in {_safe(raw)!r}")
    parsed.port  # noqa: B018 - raises ValueError on a bad port
    return raw


def rq_cli_settings(url: str, tls_verify: bool) -> dict[str, Any]:
    """What RQ's command line reads from a ``-c`` settings module: REDIS_URL, or SENTINEL for a Sentinel URL."""
    if not is_sentinel(url):
        return {"REDIS_URL": client_redis_url(url, tls_verify)}
    target = parse_sentinel_url(url)
    extra: dict[str, Any] = {"socket_connect_timeout": target.socket_connect_timeout}
    if target.ssl and not tls_verify:
        extra["ssl_cert_reqs"] = "none"
    return {"SENTINEL": {
        "INSTANCES": list(target.sentinels), "MASTER_NAME": target.service, "DB": target.db,
        "USERNAME": target.username, "PASSWORD": target.password, "SSL": target.ssl,
        "CONNECTION_KWARGS": extra,
        "SENTINEL_KWARGS": {"password": target.sentinel_password, "socket_timeout": target.sentinel_socket_timeout},
    }}


def client_redis_url(url: str, tls_verify: bool) -> str:
    """The URL for libraries that build their own client (rq-dashboard, RQ's CLI), with REDIS_TLS_VERIFY's
    choice in it, so every client checks certificates alike."""
    if url.startswith("rediss://") and not tls_verify:
        # redis-py passes unknown query arguments to the connection: this one turns certificate checks off.
        return f"{url}{'&' if '?' in url else '?'}ssl_cert_reqs=none"
    return url
