"""The Redis connection: a client whose every call is bounded in time, and a check of the server's eviction policy."""

from __future__ import annotations

from typing import Any

from redis import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry

from engine.settings import Settings


def connect(settings: Settings, socket_timeout: float | None = 5.0, max_connections: int | None = None) -> Redis:
    """A Redis client whose every call is bounded in time, so an outage fails fast instead of hanging.

    ``max_connections`` caps the pool: callers beyond it wait (up to ``socket_timeout``) for a free connection
    instead of opening more, so hundreds of concurrent web requests share a few connections.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": 1.0,
        "socket_timeout": socket_timeout,
        "health_check_interval": 15,
        "retry": RedisRetry(NoBackoff(), 1),
    }
    if settings.redis_url.startswith("rediss://") and not settings.redis_tls_verify:
        options["ssl_cert_reqs"] = "none"  # managed Redis with a self-signed certificate, off only when asked
    if max_connections is None:
        return Redis.from_url(settings.redis_url, **options)
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=max_connections, timeout=socket_timeout, **options
    )
    client = Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client


def eviction_warning(connection: Redis) -> str | None:
    """A warning when this Redis may evict keys (job data would silently disappear), else None."""
    policy = connection.info("memory").get("maxmemory_policy", "noeviction")
    if policy == "noeviction":
        return None
    return (
        f"Redis maxmemory-policy is {policy!r}: under memory pressure it deletes keys, including queued jobs. "
        "Set maxmemory-policy noeviction (and appendonly yes, appendfsync everysec)."
    )
