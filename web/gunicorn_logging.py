"""gunicorn's logger, speaking LOG_FORMAT for the whole web process: with ``json``, gunicorn's own boot and access
lines are JSON objects too. Processes set up logging at their entry point; ``create_app`` leaves it alone."""

from __future__ import annotations

import os
from typing import Any

from gunicorn import glogging

from engine import logs
from engine.logs import ContextFilter, EscapeFilter, JsonFormatter
from engine.settings import Settings

ACCESS_FIELDS = {"h": "remote", "m": "method", "U": "path", "q": "query", "s": "status", "B": "bytes",
                 "M": "duration_ms", "a": "user_agent", "{x-request-id}o": "request_id"}


class StackLogger(glogging.Logger):
    """Text lines as gunicorn writes them, or one JSON object per line when LOG_FORMAT=json."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        settings = Settings.from_env()
        logs.configure(settings.log_format, settings.log_level)  # the app's own lines (job events) go to root
        self.json = settings.log_format == "json"
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if self.json:
                    handler.setFormatter(JsonFormatter())
                    handler.addFilter(ContextFilter())
                else:  # no logged value may start a line of its own
                    handler.addFilter(EscapeFilter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """An access line; in JSON its parts are fields, the request id among them."""
        if not self.json:
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return None
        atoms = self.atoms(resp, req, environ, request_time)
        fields = {name: atoms.get(atom) for atom, name in ACCESS_FIELDS.items()}
        fields["status"] = int(fields["status"]) if str(fields["status"]).isdigit() else fields["status"]
        fields["pid"] = os.getpid()
        self.access_log.info("%s %s %s", fields["method"], fields["path"], fields["status"], extra=fields)
        return None
