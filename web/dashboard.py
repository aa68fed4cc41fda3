"""rq-dashboard mounted at /rq behind the operator login, reading jobs with the JSON serializer.

Hardening (docs/security.md): its POSTs go through Flask-WTF's CSRF check (our templates under
templates/rq_dashboard/ send the token), the GET that re-queues every failed job is refused, and its job
fields render escaped (the same templates).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import rq_dashboard
import rq_dashboard.web
from flask import Flask, Response, current_app, redirect, request, url_for
from redis import Redis
from rq import Worker
from rq.exceptions import NoSuchJobError

from engine.queues import SERIALIZER
from engine.settings import Settings
from web import access, ratelimit

URL_PREFIX = "/rq"
MUTATING_GET = {"rq_dashboard.requeue_all"}  # rq-dashboard accepts GET here: a link or <img> could re-queue
# What rq-dashboard's URL parts may be; it would answer anything else with a 500 (RQ refusing the id, an unknown
# registry, a page size of 0, a Redis instance it does not have).
VIEW_ARGS: dict[str, Callable[[Any], bool]] = {
    "job_id": re.compile(r"[A-Za-z0-9_-]{1,128}").fullmatch,  # the ids RQ accepts (longer ones are never ours)
    "queue_name": lambda name: name is None or (0 < len(name) <= 128 and name.isprintable()),
    "registry_name": {"queued", "failed", "deferred", "started", "finished", "scheduled", "canceled"}.__contains__,
    "order": {"asc", "dsc"}.__contains__,
    "per_page": lambda text: str(text).isdigit() and 0 < int(text) <= 1000,
    "page": lambda text: str(text).isdigit() and 0 < int(text) <= 1_000_000,
}


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

    @app.before_request
    def dashboard_guard():
        if request.blueprint != rq_dashboard.blueprint.name:
            return None
        refusal = _login_refusal()
        if refusal is not None:
            return refusal
        if request.endpoint in MUTATING_GET and request.method != "POST":
            return Response("Use POST.\n", 405, {"Allow": "POST"})
        if not _valid_view_args(request.view_args or {}):
            return Response("No such page: an id, queue, registry or page number in its address is not one the "
                            "dashboard knows.\n", 404, {"Content-Type": "text/plain"})
        return None

    @app.errorhandler(NoSuchJobError)
    def no_such_job(exc: NoSuchJobError):
        return Response("No such job: it expired or never existed.\n", 404, {"Content-Type": "text/plain"})


def _this_apps_client(url: str, **options: Any) -> tuple[None, Redis]:
    """What rq-dashboard calls ``from_url``: (no Sentinel object, the app's Redis client)."""
    return None, current_app.extensions["redis"]


def _login_refusal() -> Response | None:
    """None when the request may use the dashboard: the operator's session (the pages' login), or, for scripts,
    HTTP Basic with the operator's user and password, charged to the client's rate limit like a login post (a
    wrong one costs FAILED_LOGIN_COST, so guessing runs out much faster than using)."""
    if access.logged_in():
        return None
    auth = request.authorization
    if auth is None or auth.type != "basic":
        if request.method == "GET":
            return redirect(url_for("views.login", next=request.full_path.rstrip("?")), code=303)
        return Response("Log in at /login first.\n", 403, {"Content-Type": "text/plain"})
    right = access.check_login(auth.username or "", auth.password or "")
    verdict = current_app.extensions["limiter"].charge(ratelimit.address_group(request.remote_addr),
                                                       1 if right else access.FAILED_LOGIN_COST)
    if not verdict.allowed:
        return ratelimit.too_many(f"Too many dashboard requests or wrong passwords from your address. Try again in "
                                  f"{verdict.retry_after} s.", verdict.retry_after)
    if not right:
        return Response("Wrong user name or password.\n", 401, {"WWW-Authenticate": 'Basic realm="rq-dashboard"'})
    return None


def _valid_view_args(args: dict[str, Any]) -> bool:
    """Whether every part of a dashboard URL is one rq-dashboard can answer without an error."""
    if args.get("instance_number", 0) >= len(current_app.config["RQ_DASHBOARD_REDIS_URL"]):
        return False
    return all(check(args[name]) for name, check in VIEW_ARGS.items() if name in args)


class JsonWorkers(Worker):
    """What rq-dashboard calls ``Worker``: the same workers, read with our serializer."""

    @classmethod
    def all(cls, *args, **kwargs):
        kwargs["serializer"] = SERIALIZER
        return super().all(*args, **kwargs)

