"""Production gunicorn settings: PORT and WEB_CONCURRENCY from the environment, sane timeouts.

Load it by file path (``--config web/gunicorn_conf.py``, as the Procfile does), not as ``python:web.gunicorn_conf``:
the ``web`` package would be imported before the monkey-patching below.
"""

from gevent import monkey

# gevent workers patch the standard library only after the fork, but the master already imports the web package
# (for logger_class), and with it redis, urllib3 and ssl: patch first, so they get cooperative sockets and ssl.
monkey.patch_all()

from engine.settings import Settings  # noqa: E402 - after patching, on purpose
from web import gunicorn_errors  # noqa: E402

gunicorn_errors.install()  # gunicorn's own 400/414/431 answers come back as the API's JSON error shape

_settings = Settings.from_env()  # fails loudly, naming the variable, before any worker boots

# Development (make run) listens on loopback only; a platform router needs every interface.
bind = f"{'127.0.0.1' if _settings.app_env == 'development' else '0.0.0.0'}:{_settings.port}"
workers = _settings.web_concurrency
# gevent: a request waiting on Redis (long-poll ?wait=, a slow client) costs a greenlet, not one of a few threads,
# so hundreds of long-polls cannot starve /healthz or short requests. See docs/api.md, "Long-poll".
worker_class = "gevent"
worker_connections = 1000  # concurrent requests per worker process
timeout = 30  # Heroku's router gives up after 30 s too
graceful_timeout = 25  # finish in-flight requests within Heroku's 30 s SIGTERM grace
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
logger_class = "web.gunicorn_logging.StackLogger"  # LOG_FORMAT=json makes gunicorn's lines JSON too
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'
# gunicorn trusts no peer's X-Forwarded-* / X-Forwarded-Ssl headers, not even loopback's (its default is
# 127.0.0.1,::1, which made a local client's "X-Forwarded-Proto: https" look like TLS). Forwarded headers are read
# in one place only: Flask's ProxyFix, when PROXY_FIX_* says how many proxies set them (web/security.py).
forwarded_allow_ips = ""
control_socket_disable = True  # gunicorn's default control socket path is shared by every instance on the host
