"""Web hardening: security headers with a nonced CSP, rate limits on submissions, the optional API token,
and ProxyFix for running behind a router. Registered from create_app."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, Response, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from redis.exceptions import RedisError
from werkzeug.middleware.proxy_fix import ProxyFix

from engine.recovery import eviction_warning
from engine.settings import Settings
from web.errors import error_response

CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'{extra_style}; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DASHBOARD_PREFIX = "/rq/"


def csp_nonce() -> str:
    """The per-request nonce an inline <script> must carry (templates: ``nonce="{{ csp_nonce() }}"``)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def security_headers(response: Response) -> Response:
    """CSP without inline script (unless nonced), nosniff, no framing, no referrer leaks."""
    # rq-dashboard's markup carries style attributes; our own pages carry none.
    extra_style = " 'unsafe-inline'" if request.path.startswith(DASHBOARD_PREFIX) else ""
    response.headers["Content-Security-Policy"] = CSP.format(nonce=csp_nonce(), extra_style=extra_style)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


def require_api_token(token: str):
    """A before_request hook: /api needs ``Authorization: Bearer <API_TOKEN>`` (the OpenAPI document excepted)."""

    def check() -> Response | None:
        if not request.path.startswith("/api/") or request.path == "/api/openapi.json":
            return None
        scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        response = error_response(401, "unauthorized", "Send Authorization: Bearer <API token>.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return response

    return check


def make_limiter(app: Flask, settings: Settings) -> Limiter:
    """Flask-Limiter on the app's own Redis (shared by every web process); fails open if Redis is down."""
    redis = app.extensions["redis"]
    return Limiter(
        get_remote_address,  # the client address; set PROXY_FIX_X_FOR behind a router so it is the real one
        app=app,
        storage_uri="redis://",  # the scheme picks the backend; the connection comes from the pool below
        storage_options={"connection_pool": redis.connection_pool},
        strategy="moving-window",
        headers_enabled=True,
        swallow_errors=True,  # a Redis outage must not turn into 500s: the request then gets its own 503
        key_prefix="stack:ratelimit",
    )


def warn_if_evicting(app: Flask) -> None:
    """Log a warning at start-up when the given Redis may evict job data (silent if it is down)."""
    try:
        warning = eviction_warning(app.extensions["redis"])
    except RedisError:
        return
    if warning:
        app.logger.warning(warning)


def init_app(app: Flask, settings: Settings) -> None:
    """Install every hardening measure on ``app``; blueprints must already be registered."""
    warn_if_evicting(app)
    if settings.proxy_fix_x_for or settings.proxy_fix_x_proto or settings.proxy_fix_x_host:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.proxy_fix_x_for, x_proto=settings.proxy_fix_x_proto,
            x_host=settings.proxy_fix_x_host,
        )
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.after_request(security_headers)
    if settings.api_token:
        app.before_request(require_api_token(settings.api_token))
    limiter = make_limiter(app, settings)
    app.extensions["limiter"] = limiter
    for name in ("api", "views"):  # submissions: every POST of the API and of the form pages
        blueprint = app.blueprints.get(name)
        if blueprint is not None:
            limiter.limit(settings.ratelimit_submit, methods=["POST"])(blueprint)
