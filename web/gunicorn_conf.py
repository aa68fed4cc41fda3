"""Production gunicorn settings: PORT and WEB_CONCURRENCY from the environment, sane timeouts.

Load it by file path (``--config web/gunicorn_conf.py``, as the Procfile does), not as ``python:web.gunicorn_conf``:
importing the ``web`` package in the master would import redis and urllib3 before gevent monkey-patches ssl.
"""

from jobs.settings import Settings

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
forwarded_allow_ips = "*" if _settings.app_env == "production" else "127.0.0.1"
control_socket_disable = True  # gunicorn's default control socket path is shared by every instance on the host
