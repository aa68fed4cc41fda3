"""The Redis connection: a client whose every call is bounded in time, and a check of the server's eviction policy.

With a ``redis+sentinel://`` URL (engine.redis_url) the client asks the Sentinels for the primary on every new
connection and drops its connections when the primary changes (redis-py's SentinelConnectionPool), so it
follows a failover without a restart.
"""

from __future__ import annotations

from typing import Any

from redis import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry
from redis.sentinel import Sentinel, SentinelConnectionPool

from engine import redis_url
from engine.settings import Settings


def connect(settings: Settings, socket_timeout: float | None = 5.0, max_connections: int | None = None) -> Redis:
    """A Redis client whose every call is bounded in time, so an outage fails fast instead of hanging; with a
    ``redis+sentinel://`` URL it follows the primary the Sentinels name (engine.redis_url).

    ``max_connections`` caps the pool: callers beyond it wait (up to ``socket_timeout``) for a free connection
    instead of opening more, so hundreds of concurrent web requests share a few connections.
    """
    return client(
        settings.redis_url, settings.redis_tls_verify, max_connections,
        socket_connect_timeout=1.0, socket_timeout=socket_timeout, health_check_interval=15,
        retry=RedisRetry(NoBackoff(), 1),
    )


class SentinelBlockingConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed pool that makes callers wait for a free connection instead of opening more."""


def client(url: str, tls_verify: bool, max_connections: int | None = None, **options: Any) -> Redis:
    """A client for ``url`` with redis-py ``options`` (timeouts, retry); a capped, blocking pool when asked."""
    if redis_url.is_sentinel(url):
        return _sentinel_client(redis_url.parse_sentinel_url(url), tls_verify, max_connections, options)
    if url.startswith("rediss://") and not tls_verify:
        options["ssl_cert_reqs"] = "none"  # managed Redis with a self-signed certificate, off only when asked
    if max_connections is None:
        return Redis.from_url(url, **options)
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=options.get(
        "socket_timeout"), **options)
    redis = Redis(connection_pool=pool)
    redis.auto_close_connection_pool = True
    return redis


def _sentinel_client(target: redis_url.SentinelURL, tls_verify: bool, max_connections: int | None,
                     options: dict[str, Any]) -> Redis:
    options = {**options, "db": target.db, "username": target.username, "password": target.password,
               "socket_connect_timeout": target.socket_connect_timeout}
    if target.ssl:
        options["ssl"] = True
        if not tls_verify:
            options["ssl_cert_reqs"] = "none"
    sentinel_options = {"password": target.sentinel_password, "socket_timeout": target.sentinel_socket_timeout,
                        "socket_connect_timeout": target.sentinel_socket_timeout}
    sentinel = Sentinel(target.sentinels, sentinel_kwargs=sentinel_options)
    if max_connections is None:
        return sentinel.master_for(target.service, **options)
    return sentinel.master_for(target.service, connection_pool_class=SentinelBlockingConnectionPool,
                               max_connections=max_connections, timeout=options.get("socket_timeout"), **options)


def eviction_warning(connection: Redis) -> str | None:
    """A warning when this Redis may evict keys (job data would silently disappear), else None."""
    policy = connection.info("memory").get("maxmemory_policy", "noeviction")
    if policy == "noeviction":
        return None
    return (
        f"Redis maxmemory-policy is {policy!r}: under memory pressure it deletes keys, including queued jobs. "
        "Set maxmemory-policy noeviction (and appendonly yes, appendfsync everysec)."
    )
