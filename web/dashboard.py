"""rq-dashboard mounted at /rq behind HTTP Basic auth, reading jobs with the JSON serializer.

Hardening (docs/security.md): its POSTs go through Flask-WTF's CSRF check (our templates under
templates/rq_dashboard/ send the token), the GET that re-queues every failed job is refused, and its job
fields render escaped (the same templates).
"""

from __future__ import annotations

import hmac
from typing import Any

import rq_dashboard
import rq_dashboard.web
from flask import Flask, Response, current_app, request
from redis import Redis
from rq import Worker
from rq.exceptions import NoSuchJobError

from engine.queues import SERIALIZER
from engine.settings import Settings

URL_PREFIX = "/rq"
MUTATING_GET = {"rq_dashboard.requeue_all"}  # rq-dashboard accepts GET here: a link or <img> could re-queue


def init_app(app: Flask, settings: Settings) -> None:
    """Mount the dashboard, only when DASHBOARD_PASSWORD is set."""
    if not settings.dashboard_password:
        return
    # rq-dashboard reads its serializer from a process-global, not from Flask config, and lists workers without
    # it: a busy worker's current job would be read with pickle and the workers table would answer 500.
    rq_dashboard.web.config.serializer = SERIALIZER
    rq_dashboard.web.Worker = JsonWorkers
    # It builds a client from the URL (through redis-sentinel-url, which reads neither ssl nor the Sentinels'
    # password from it) at start-up and again on every page: it gets this app's own client instead, with the
    # same timeouts, TLS choice and Sentinel options, from one bounded pool.
    rq_dashboard.web.from_url = _this_apps_client
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", settings.redis_url)
    with app.app_context():
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
        if request.endpoint in MUTATING_GET and request.method != "POST":
            return Response("Use POST.\n", 405, {"Allow": "POST"})
        return None

    @app.errorhandler(NoSuchJobError)
    def no_such_job(exc: NoSuchJobError):
        return Response("No such job: it expired or never existed.\n", 404, {"Content-Type": "text/plain"})


def _this_apps_client(url: str, **options: Any) -> tuple[None, Redis]:
    """What rq-dashboard calls ``from_url``: (no Sentinel object, the app's Redis client)."""
    return None, current_app.extensions["redis"]


class JsonWorkers(Worker):
    """What rq-dashboard calls ``Worker``: the same workers, read with our serializer."""

    @classmethod
    def all(cls, *args, **kwargs):
        kwargs["serializer"] = SERIALIZER
        return super().all(*args, **kwargs)


def _same(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())
