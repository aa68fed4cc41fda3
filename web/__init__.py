"""The Flask side: ``create_app`` builds the Redis client and queues once and registers the blueprints."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from engine import catalog
from engine.connection import connect
from engine.queues import make_queues
from engine.settings import ConfigError, Settings
from web.errors import MAX_BODY_BYTES

csrf = CSRFProtect()
WEB_REDIS_CONNECTIONS = 32  # per web process; Redis calls are short, so waiters queue briefly for one


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides Flask config; its ``SETTINGS`` key replaces the environment."""
    overrides = dict(config or {})
    settings: Settings = overrides.pop("SETTINGS", None) or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(settings),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.app_env == "production",
        WTF_CSRF_TIME_LIMIT=None,  # tokens live as long as the session
    )
    app.config.update(overrides)
    app.json.sort_keys = False  # keep the documented field order

    # A bounded pool: under gevent, hundreds of concurrent requests (long-polls) share these connections.
    redis = connect(settings, socket_timeout=2.0, max_connections=WEB_REDIS_CONNECTIONS)
    app.extensions["settings"] = settings
    app.extensions["redis"] = redis
    app.extensions["queues"] = make_queues(redis)

    catalog.load()  # import the jobs now: a broken job module stops start-up, not the first request
    catalog.check_settings()

    from web import api, dashboard, errors, health, metrics, openapi, request_id, results, security, views

    request_id.init_app(app)  # first, so every later hook and log line has the id

    csrf.init_app(app)
    csrf.exempt(api.bp)  # the JSON API uses no cookies, so there is no session to forge
    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    metrics.init_app(app, settings)
    dashboard.init_app(app, settings)
    errors.init_app(app)
    results.init_app(app)
    security.init_app(app, settings)  # headers, rate limits, API token, ProxyFix (after the blueprints)
    return app


def _secret_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    if settings.app_env == "production":
        raise ConfigError("SECRET_KEY", "required when APP_ENV=production (make run keeps one in var/)")
    return secrets.token_hex(32)  # development and tests: a fresh key per process is fine
