"""Log setup shared by web and worker: text or JSON lines, each stamped with the request id and job id in scope."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_HANDLER_NAME = "stack"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # what could end a line or hide in one
# Attributes every LogRecord has; anything else was passed in ``extra`` and belongs in the JSON line.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


def clean_request_id(given: str | None) -> str:
    """The caller's request id when it is short and safe to log, else a fresh one."""
    if given and _VALID_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


@contextmanager
def context(request_id: str | None = None, job_id: str | None = None) -> Iterator[None]:
    """Stamp every log line inside the block with this request id and job id."""
    tokens = (request_id_var.set(request_id), job_id_var.set(job_id))
    try:
        yield
    finally:
        job_id_var.reset(tokens[1])
        request_id_var.reset(tokens[0])


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``job_id`` from the context to each record that does not carry its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "job_id", None) is None:
            record.job_id = job_id_var.get()
        return True


def escape(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``), so a value can't start a log line."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class EscapeFilter(logging.Filter):
    """Escapes control characters in each record's message: a logged path or id can't forge a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escape(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context ids and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger message`` plus ``key=value`` for the context ids, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [f"{key}={getattr(record, key)}" for key in ("request_id", "job_id") if getattr(record, key, None)]
        if ids and not getattr(record, "event", None):  # job event lines already name their ids
            text = f"{text} {' '.join(ids)}"
        return text


def configure(log_format: str = "text", level: str = "INFO", stream: Any = None) -> logging.Handler:
    """Send all logs to one stream handler on the root logger; calling it again replaces that handler."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    if log_format != "json":  # JSON escapes every value itself
        handler.addFilter(EscapeFilter())
    root.addHandler(handler)
    root.setLevel(level)
    return handler
