"""REDIS_URL for libraries that build their own client from a URL (rq-dashboard, rate limiters)."""

from __future__ import annotations

from engine.settings import Settings


def client_redis_url(settings: Settings) -> str:
    """The URL with the TLS choice of REDIS_TLS_VERIFY in it, so every client checks certificates alike."""
    url = settings.redis_url
    if url.startswith("rediss://") and not settings.redis_tls_verify:
        # redis-py passes unknown query arguments to the connection: this one turns certificate checks off.
        return f"{url}{'&' if '?' in url else '?'}ssl_cert_reqs=none"
    return url
