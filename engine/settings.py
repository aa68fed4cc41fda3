"""The one module that reads the environment. Bad values stop start-up with a message naming the variable."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlparse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
ENVIRONMENTS = ("production", "development", "testing")
LOG_FORMATS = ("text", "json")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """An environment variable has a missing or invalid value."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")
        self.name = name


@dataclass(frozen=True)
class Settings:
    """Typed configuration shared by web, worker and CLI."""

    redis_url: str = "redis://localhost:6379/0"
    redis_tls_verify: bool = True
    app_env: str = "production"
    port: int = 5000
    web_concurrency: int = 2
    secret_key: str | None = None
    dashboard_user: str = "admin"
    dashboard_password: str | None = None
    fetch_allow_networks: tuple[Network, ...] = ()
    fetch_max_bytes: int = 10 * 1024 * 1024
    fetch_timeout: float = 10.0
    result_ttl: int = 7 * 24 * 3600
    failure_ttl: int = 7 * 24 * 3600
    queued_ttl: int = 24 * 3600
    job_timeout: int = 180
    worker_processes: int = 2
    worker_threads: int = 32
    worker_max_jobs: int = 50000
    worker_max_rss_mb: int = 400
    worker_hang_grace: float = 30.0
    retry_intervals: tuple[int, ...] = (5, 30, 120)
    smtp: SmtpServer | None = None  # None: SMTP_URL unset, so send_email fails with a message saying so
    smtp_timeout: float = 10.0
    mail_from: str = "noreply@localhost"
    readyz_require_worker: bool = False
    metrics_token: str | None = None
    log_format: str = "text"
    log_level: str = "INFO"
    shutdown_grace: int = 20
    worker_lost_after: int = 10
    api_token: str | None = None
    proxy_fix_x_for: int = 0
    proxy_fix_x_proto: int = 0
    proxy_fix_x_host: int = 0
    ratelimit_submit: str = "60 per minute"
    schedule_file: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ConfigError naming the first bad one."""
        env = os.environ if environ is None else environ
        app_env = _choice(env, "APP_ENV", ENVIRONMENTS, "production")
        secret_key = env.get("SECRET_KEY") or None
        if secret_key is not None and len(secret_key) < 16:
            raise ConfigError("SECRET_KEY", "must be at least 16 characters")
        return cls(
            redis_url=_redis_url(env),
            redis_tls_verify=_bool(env, "REDIS_TLS_VERIFY", True),
            app_env=app_env,
            port=_int(env, "PORT", 5000, 1, 65535),
            web_concurrency=_int(env, "WEB_CONCURRENCY", 2, 1, 64),
            secret_key=secret_key,
            dashboard_user=env.get("DASHBOARD_USER") or "admin",
            dashboard_password=env.get("DASHBOARD_PASSWORD") or None,
            fetch_allow_networks=_networks(env, "FETCH_ALLOW_NETWORKS"),
            fetch_max_bytes=_int(env, "FETCH_MAX_BYTES", 10 * 1024 * 1024, 1, 1 << 40),
            fetch_timeout=_float(env, "FETCH_TIMEOUT", 10.0, 0.1, 3600.0),
            result_ttl=_int(env, "RESULT_TTL", 7 * 24 * 3600, 1, 10**9),
            failure_ttl=_int(env, "FAILURE_TTL", 7 * 24 * 3600, 1, 10**9),
            queued_ttl=_int(env, "QUEUED_TTL", 24 * 3600, 1, 10**9),
            job_timeout=_int(env, "JOB_TIMEOUT", 180, 1, 24 * 3600),
            retry_intervals=_intervals(env, "RETRY_INTERVALS", (5, 30, 120)),
            smtp=_smtp_server(env),
            smtp_timeout=_float(env, "SMTP_TIMEOUT", 10.0, 0.1, 600.0),
            mail_from=_mail_from(env),
            readyz_require_worker=_bool(env, "READYZ_REQUIRE_WORKER", False),
            metrics_token=_token(env, "METRICS_TOKEN"),
            log_format=_choice(env, "LOG_FORMAT", LOG_FORMATS, "text"),
            log_level=_choice(env, "LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
            shutdown_grace=_int(env, "SHUTDOWN_GRACE", 20, 0, 3600),
            worker_lost_after=_int(env, "WORKER_LOST_AFTER", 10, 3, 3600),
            api_token=_token(env, "API_TOKEN"),
            proxy_fix_x_for=_int(env, "PROXY_FIX_X_FOR", 0, 0, 10),
            proxy_fix_x_proto=_int(env, "PROXY_FIX_X_PROTO", 0, 0, 10),
            proxy_fix_x_host=_int(env, "PROXY_FIX_X_HOST", 0, 0, 10),
            ratelimit_submit=_rate(env, "RATELIMIT_SUBMIT", "60 per minute"),
            schedule_file=env.get("SCHEDULE_FILE") or None,
            worker_processes=_int(env, "WORKER_PROCESSES", 2, 0, 256),
            worker_threads=_int(env, "WORKER_THREADS", 32, 1, 1024),
            worker_max_jobs=_int(env, "WORKER_MAX_JOBS", 50000, 0, 10**9),
            worker_max_rss_mb=_int(env, "WORKER_MAX_RSS_MB", 400, 0, 1 << 20),
            worker_hang_grace=_float(env, "WORKER_HANG_GRACE", 30.0, 0.1, 3600.0),
        )


@dataclass(frozen=True)
class SmtpServer:
    """Where send_email delivers: parsed from SMTP_URL (smtp://user:pass@host:port, smtps://, ?starttls=1)."""

    host: str
    port: int
    implicit_tls: bool = False  # smtps://: TLS from the first byte
    starttls: bool = False  # smtp://…?starttls=1: upgrade the plain connection before logging in
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The URL without credentials, safe to print."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{self.host}:{self.port}" + ("?starttls=1" if self.starttls else "")


def _smtp_server(env: Mapping[str, str]) -> SmtpServer | None:
    url = env.get("SMTP_URL") or ""
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("smtp", "smtps"):
        raise ConfigError("SMTP_URL", f"scheme must be smtp:// or smtps://, got {parsed.scheme or url!r}")
    if not parsed.hostname:
        raise ConfigError("SMTP_URL", "no host; use smtp://user:password@host:port")
    try:
        port = parsed.port or (465 if parsed.scheme == "smtps" else 25)
    except ValueError as exc:
        raise ConfigError("SMTP_URL", str(exc)) from None
    if parsed.path not in ("", "/"):
        raise ConfigError("SMTP_URL", f"takes no path, got {parsed.path!r}; use smtp://user:password@host:port")
    query = dict(parse_qsl(parsed.query, keep_blank_values=True))
    unknown = sorted(set(query) - {"starttls"})
    if unknown:
        raise ConfigError("SMTP_URL", f"unknown option(s) {', '.join(unknown)}; the only one is ?starttls=1")
    try:
        starttls = _bool(query, "starttls", False)
    except ConfigError:
        raise ConfigError("SMTP_URL", f"starttls must be 1 or 0, got {query['starttls']!r}") from None
    if starttls and parsed.scheme == "smtps":
        raise ConfigError("SMTP_URL", "smtps:// is TLS already; ?starttls=1 applies to smtp:// only")
    if (parsed.username is None) != (parsed.password is None):
        raise ConfigError("SMTP_URL", "give both a user and a password (smtp://user:password@host), or neither")
    if parsed.username is not None and parsed.scheme == "smtp" and not starttls and not _is_loopback(parsed.hostname):
        raise ConfigError("SMTP_URL", "a password would cross the network in clear text: use smtps:// or ?starttls=1")
    return SmtpServer(
        host=parsed.hostname,
        port=port,
        implicit_tls=parsed.scheme == "smtps",
        starttls=starttls,
        username=unquote(parsed.username) if parsed.username is not None else None,
        password=unquote(parsed.password) if parsed.password is not None else None,
    )


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mail_from(env: Mapping[str, str]) -> str:
    raw = (env.get("MAIL_FROM") or "noreply@localhost").strip()
    _, address = parseaddr(raw)
    if "@" not in address or any(c in raw for c in "\r\n"):
        raise ConfigError("MAIL_FROM", f"must be an address like noreply@example.com or 'App <noreply@…>', got {raw!r}")
    return raw


def diagnostic_jobs_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """DIAGNOSTIC_JOBS: catalogue the benchmark and fault-injection jobs (engine/diagnostics.py); never in prod."""
    return _bool(os.environ if environ is None else environ, "DIAGNOSTIC_JOBS", False)


def _redis_url(env: Mapping[str, str]) -> str:
    url = env.get("REDIS_URL") or "redis://localhost:6379/0"
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL", f"scheme must be redis://, rediss:// or unix://, got {url!r}")
    if parsed.scheme == "unix" and not parsed.path:
        raise ConfigError("REDIS_URL", "unix:// URL needs a socket path, e.g. unix:///path/to/redis.sock")
    if parsed.scheme != "unix" and not parsed.hostname:
        raise ConfigError("REDIS_URL", f"no host in {url!r}")
    try:
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError("REDIS_URL", str(exc)) from None
    return url


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}, got {value}")
    return value


def _intervals(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(name, f"must be comma-separated whole seconds such as 5,30,120, got {raw!r}") from None
    if not 0 < len(values) <= 20 or any(not 0 <= v <= 24 * 3600 for v in values):
        raise ConfigError(name, f"must list 1 to 20 delays of 0 to 86400 seconds, got {raw!r}")
    return values


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name) or default
    if raw not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _networks(env: Mapping[str, str], name: str) -> tuple[Network, ...]:
    raw = env.get(name) or ""
    networks = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(name, f"{part!r} is not a CIDR network such as 127.0.0.0/8") from None
    return tuple(networks)


def _token(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and (len(raw) < 16 or not raw.isprintable() or " " in raw):
        raise ConfigError(name, "must be at least 16 printable characters without spaces")
    return raw


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip()
    parts = raw.split()
    units = ("second", "minute", "hour", "day")
    if len(parts) != 3 or not parts[0].isdigit() or int(parts[0]) < 1 or parts[1] != "per" \
            or parts[2].rstrip("s") not in units:
        raise ConfigError(name, f"must look like '60 per minute' (second, minute, hour or day), got {raw!r}")
    return raw
