"""Production gunicorn settings: PORT and WEB_CONCURRENCY from the environment, sane timeouts."""

from jobs.settings import Settings

_settings = Settings.from_env()  # fails loudly, naming the variable, before any worker boots

# Development (make run) listens on loopback only; a platform router needs every interface.
bind = f"{'127.0.0.1' if _settings.app_env == 'development' else '0.0.0.0'}:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "gthread"  # threads keep a slow client or a Redis round trip from blocking the process
threads = 8
timeout = 30  # Heroku's router gives up after 30 s too
graceful_timeout = 25  # finish in-flight requests within Heroku's 30 s SIGTERM grace
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
logger_class = "web.gunicorn_logging.StackLogger"  # LOG_FORMAT=json makes gunicorn's lines JSON too
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'
forwarded_allow_ips = "*" if _settings.app_env == "production" else "127.0.0.1"
control_socket_disable = True  # gunicorn's default control socket path is shared by every instance on the host
