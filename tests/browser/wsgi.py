"""The app as the browser tests serve it: the real app, with the strict CSP the production stack sends.

With ``default-src 'self'`` any inline script, inline style or event-handler attribute in our pages is
refused by Chromium and logged, and the tests fail on such a log line. The dashboard (/rq, rq-dashboard's
own inline scripts) is left out here: its templates are overridden and checked by the security work.
"""

from __future__ import annotations

from flask import request

from web import create_app

CSP = "default-src 'self'"


def app():
    """Gunicorn's app factory: create_app() wrapped to add the CSP header where the app did not set one."""
    flask_app = create_app()

    @flask_app.after_request
    def content_security_policy(response):
        if not request.path.startswith("/rq"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    return flask_app
