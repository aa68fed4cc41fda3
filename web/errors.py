"""One error shape for the API (``{"error": {"code", "message"}}``) and plain pages for the HTML side."""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, make_response, render_template, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from engine.enqueue_script import NotReplicated
from engine.logs import escape

MAX_BODY_BYTES = 512 * 1024  # a 100 KB text parameter, even \u-escaped; larger bodies get a 413
RETRY_AFTER = 2  # seconds a client should wait after a 503: a restart or a Sentinel failover takes a few


class ApiError(Exception):
    """An API failure with its HTTP status, a stable code and a message for people."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    # Down, slow, out of memory (noeviction) or read-only after a failover: the job store can't take the request.
    app.register_error_handler(RedisError, redis_down)
    app.register_error_handler(Exception, _unexpected)


def error_response(status: int, code: str, message: str) -> Response:
    """The API error body, or a small HTML page outside /api."""
    if request.path.startswith("/api/"):
        return make_response(jsonify(error={"code": code, "message": message}), status)
    return make_response(render_template("error.html", status=status, message=message), status)


def _api_error(exc: ApiError):
    return error_response(exc.status, exc.code, exc.message)


def _http_error(exc: HTTPException):
    code = (exc.name or "error").lower().replace(" ", "_")
    response = error_response(exc.code or 500, code, exc.description or exc.name)
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def redis_down(exc: Exception) -> Response:
    """503 with Retry-After: Redis is down, read-only or full, or no replica confirmed a submission."""
    message = ("No replica confirmed the job in time, so it was not accepted; try again."
               if isinstance(exc, NotReplicated) else "The job store is unavailable; try again.")
    response = error_response(ServiceUnavailable.code, "redis_unavailable", message)
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def _unexpected(exc: Exception):
    current_app.logger.exception("unhandled error on %s %s", request.method, escape(request.path))
    return error_response(InternalServerError.code, "internal_error", "Something went wrong on our side.")
