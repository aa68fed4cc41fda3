"""rq-dashboard mounted at /rq behind HTTP Basic auth, reading jobs with the JSON serializer."""

from __future__ import annotations

import hmac

import rq_dashboard
import rq_dashboard.web
from flask import Flask, Response, request

from jobs.queues import SERIALIZER
from jobs.redis_url import client_redis_url
from jobs.settings import Settings

URL_PREFIX = "/rq"


def init_app(app: Flask, settings: Settings) -> None:
    """Mount the dashboard, only when DASHBOARD_PASSWORD is set."""
    if not settings.dashboard_password:
        return
    # rq-dashboard reads its serializer from a process-global, not from Flask config.
    rq_dashboard.web.config.serializer = SERIALIZER
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", client_redis_url(settings))
    rq_dashboard.web.setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    user, password = settings.dashboard_user, settings.dashboard_password

    @app.before_request
    def dashboard_guard():
        if request.blueprint != rq_dashboard.blueprint.name:
            return None
        auth = request.authorization
        if auth is None or not (_same(auth.username, user) and _same(auth.password, password)):
            return Response(
                "Dashboard login required.\n", 401, {"WWW-Authenticate": 'Basic realm="rq-dashboard"'}
            )
        return None


def _same(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())
