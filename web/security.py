"""Web hardening: security headers with a nonced CSP, one rate limit per client over submissions, the API
token check, and ProxyFix for running behind a router. Registered from create_app."""

from __future__ import annotations

import secrets

from flask import Flask, Response, g, request
from redis.exceptions import RedisError
from werkzeug.middleware.proxy_fix import ProxyFix

from engine.connection import eviction_warning
from engine.settings import Settings
from web import access, ratelimit

CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'{extra_script}; style-src 'self'{extra_style}; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DASHBOARD_PREFIX = "/rq/"


def csp_nonce() -> str:
    """The per-request nonce an inline <script> must carry (templates: ``nonce="{{ csp_nonce() }}"``)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def security_headers(response: Response) -> Response:
    """CSP without inline script (unless nonced), nosniff, no framing, no referrer leaks.

    The dashboard alone (/rq/, behind its login) also gets 'unsafe-eval', which rq-dashboard's underscore
    templates need to compile (``new Function``), and inline styles for its markup; see docs/security.md.
    Our own pages get neither.
    """
    dashboard = request.path.startswith(DASHBOARD_PREFIX)
    response.headers["Content-Security-Policy"] = CSP.format(
        nonce=csp_nonce(),
        extra_script=" 'unsafe-eval'" if dashboard else "",
        extra_style=" 'unsafe-inline'" if dashboard else "",
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


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
    app.after_request(access.www_authenticate)
    # One limit per client over every POST of the API and of the pages (submit, batch items, cancel, retry,
    # the form, the login), charged before anything else looks at the request.
    app.extensions["limiter"] = ratelimit.init_app(app, settings.ratelimit_submit, ("api", "views"),
                                                   settings.daily_quota, access.client_key)
    app.before_request(access.check_bearer)  # a wrong Authorization header is refused on every API route
