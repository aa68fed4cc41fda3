"""``/metrics`` in Prometheus text format, read from Redis on each scrape and guarded by a Bearer token."""

from __future__ import annotations

import hmac

from flask import Blueprint, Flask, Response, request

from engine import metrics
from engine.settings import Settings
from web import state

bp = Blueprint("metrics", __name__)


def init_app(app: Flask, settings: Settings) -> None:
    """Serve /metrics only when METRICS_TOKEN is set, like the dashboard only with a password."""
    if settings.metrics_token:
        app.register_blueprint(bp)


@bp.get("/metrics")
def scrape():
    """Every series, computed from Redis now, so each gunicorn process answers the same."""
    if not _authorized(request.headers.get("Authorization", ""), state.settings().metrics_token or ""):
        return Response(
            "Send Authorization: Bearer <METRICS_TOKEN>.\n", 401,
            {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain; charset=utf-8"},
        )
    body = metrics.render(state.redis(), state.queues().values())
    return Response(body, 200, {"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"})


def _authorized(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
