"""gunicorn's own error answers (414 request line too long, 431 header too large, 400 malformed request) as JSON.

gunicorn refuses such requests before Flask sees them and writes a small HTML page. Every error of the API is
promised as ``{"error": {"code", "message"}}`` and the request line may not have been read (so the path is not
known), so every such answer takes the API's shape; a browser shows the JSON text, which reads fine.
Installed from web/gunicorn_conf.py, in the master before it forks its workers.
"""

from __future__ import annotations

import json
import re

from gunicorn import util

_NOT_A_CODE = re.compile(r"[^a-z0-9]+")
MESSAGES = {
    414: "The request line (method, path and query) is too long.",
    431: "A request header, or all of them together, is too large.",
}


def error_body(status: int, reason: str, detail: str) -> bytes:
    """The API's error shape for a refusal by gunicorn."""
    code = _NOT_A_CODE.sub("_", reason.lower()).strip("_") or "error"
    message = MESSAGES.get(status) or (f"{reason}: {detail}" if detail else reason)
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Stands in for gunicorn.util.write_error: the same answer, as JSON."""
    body = error_body(status_int, reason, mesg)
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    util.write_error = write_json_error
