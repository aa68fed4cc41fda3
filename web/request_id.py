"""X-Request-ID in and out: each request gets an id that its log lines and the jobs it enqueues carry."""

from __future__ import annotations

from flask import Flask, Response, g, request

from engine import logs


def init_app(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_stamp)
    app.teardown_request(_end)


def _begin() -> None:
    g.request_id = logs.clean_request_id(request.headers.get(logs.REQUEST_ID_HEADER))
    g.request_id_token = logs.request_id_var.set(g.request_id)


def _stamp(response: Response) -> Response:
    if "request_id" in g:
        response.headers[logs.REQUEST_ID_HEADER] = g.request_id
    return response


def _end(exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        try:
            logs.request_id_var.reset(token)
        except ValueError:  # torn down in another context (streamed response): just clear it
            logs.request_id_var.set(None)
