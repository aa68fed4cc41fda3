"""Settings for RQ's own command line: ``rq worker -c engine.rq_config …`` connects as this stack does.

RQ reads ``REDIS_URL`` (a plain URL) or ``SENTINEL`` (a dict) from a ``-c`` module; this one derives either from
our REDIS_URL and REDIS_TLS_VERIFY, so a ``redis+sentinel://`` URL works for ``rq worker`` and ``rq info`` too.
"""

from engine.redis_url import rq_cli_settings
from engine.settings import Settings

_settings = Settings.from_env()
_connection = rq_cli_settings(_settings.redis_url, _settings.redis_tls_verify)
REDIS_URL = _connection.get("REDIS_URL")  # RQ tries this first, then SENTINEL
SENTINEL = _connection.get("SENTINEL")
