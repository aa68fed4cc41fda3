"""The one mechanism that reads the environment. Bad values stop start-up with a message naming the variable.

Each setting is one line: ``field = var("ENV_NAME", parser, default)``, so every default is stated once. The engine's
settings are ``Settings`` below; a job declares its own the same way (a subclass of ``EnvSettings`` beside it).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from engine import redis_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
QUEUE_NAMES = ("high", "default", "low")  # the priorities; workers drain them in this order

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Parser = Callable[[str], Any]


class ConfigError(ValueError):
    """An environment variable has a missing or invalid value."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")
        self.name = name


def var(env: str, parse: Parser, default: Any) -> Any:
    """A settings field read from the environment variable ``env``; unset or blank means ``default``."""
    return dataclasses.field(default=default, metadata={"env": env, "parse": parse})


@dataclass(frozen=True)
class EnvSettings:
    """Settings read from environment variables declared with ``var``; parsers raise ValueError with the problem."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read and validate every variable; raise ConfigError naming the first bad one."""
        env = os.environ if environ is None else environ
        values = {}
        for spec in dataclasses.fields(cls):
            if "env" in spec.metadata:
                values[spec.name] = read(spec, env)
        return cls(**values)


def read(spec: dataclasses.Field, env: Mapping[str, str]) -> Any:
    """One field's value from ``env``: its default when unset or empty, else its parser's result."""
    name, raw = spec.metadata["env"], env.get(spec.metadata["env"])
    if raw is None or not raw.strip():
        return spec.default
    try:
        return spec.metadata["parse"](raw)
    except ValueError as exc:
        raise ConfigError(name, str(exc)) from None


# Parsers: text in, value out; a ValueError's message says what is wrong.


def integer(low: int, high: int) -> Parser:
    """A whole number between ``low`` and ``high``."""
    return _ranged(int, "a whole number", low, high)


def number(low: float, high: float) -> Parser:
    """A number between ``low`` and ``high``."""
    return _ranged(float, "a number", low, high)


def _ranged(convert: Callable[[str], Any], what: str, low: Any, high: Any) -> Parser:
    def parse(raw: str) -> Any:
        try:
            value = convert(raw)
        except ValueError:
            raise ValueError(f"must be {what}, got {raw!r}") from None
        return _within(value, low, high)

    return parse


def _within(value: Any, low: Any, high: Any) -> Any:
    if not low <= value <= high:
        raise ValueError(f"must be between {low} and {high}, got {value}")
    return value


def boolean(raw: str) -> bool:
    """1/true/yes/on or 0/false/no/off."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {value!r}")


def choice(*options: str) -> Parser:
    """One of ``options``, exactly."""

    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {raw!r}")
        return raw

    return parse


def auto_or(parse: Parser) -> Parser:
    """``auto`` (None: the code decides from the rest of the configuration), or what ``parse`` accepts."""

    def parsed(raw: str) -> Any:
        return None if raw.strip().lower() == "auto" else parse(raw)

    return parsed


def text(raw: str) -> str:
    """Any text, as given."""
    return raw


def token(raw: str) -> str:
    """A secret of at least 16 printable characters without spaces."""
    if len(raw) < 16 or not raw.isprintable() or " " in raw:
        raise ValueError("must be at least 16 printable characters without spaces")
    return raw


def secret_key(raw: str) -> str:
    """Flask's signing key: long enough not to be guessed."""
    if len(raw) < 16:
        raise ValueError("must be at least 16 characters")
    return raw


def networks(raw: str) -> tuple[Network, ...]:
    """Comma-separated CIDR networks."""
    found = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not a CIDR network such as 127.0.0.0/8") from None
    return tuple(found)


def intervals(raw: str) -> tuple[int, ...]:
    """Comma-separated delays in whole seconds, such as 5,30,120."""
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ValueError(f"must be comma-separated whole seconds such as 5,30,120, got {raw!r}") from None
    if not 0 < len(values) <= 20 or any(not 0 <= v <= 24 * 3600 for v in values):
        raise ValueError(f"must list 1 to 20 delays of 0 to 86400 seconds, got {raw!r}")
    return values


def rate(raw: str) -> str:
    """A rate such as '60 per minute'."""
    value = raw.strip()
    parts = value.split()
    units = ("second", "minute", "hour", "day")
    if len(parts) != 3 or not parts[0].isdigit() or int(parts[0]) < 1 or parts[1] != "per" \
            or parts[2].rstrip("s") not in units:
        raise ValueError(f"must look like '60 per minute' (second, minute, hour or day), got {value!r}")
    return value


DAY = 24 * 3600


@dataclass(frozen=True)
class Settings(EnvSettings):
    """The engine's configuration, shared by web, worker, clock and CLI."""

    redis_url: str = var("REDIS_URL", redis_url.validate, "redis://localhost:6379/0")
    redis_tls_verify: bool = var("REDIS_TLS_VERIFY", boolean, True)
    # Replicas that must have a submission before it is acknowledged (Redis WAIT); auto: 1 under Sentinel, else 0.
    redis_wait_replicas: int | None = var("REDIS_WAIT_REPLICAS", auto_or(integer(0, 10)), None)
    # Below the web's 2 s socket timeout, so a slow replica gives "not replicated" (withdrawn), never a timeout.
    redis_wait_timeout_ms: int = var("REDIS_WAIT_TIMEOUT_MS", integer(1, 1_500), 500)
    app_env: str = var("APP_ENV", choice("production", "development", "testing"), "production")
    port: int = var("PORT", integer(1, 65535), 5000)
    web_concurrency: int = var("WEB_CONCURRENCY", integer(1, 64), 2)
    secret_key: str | None = var("SECRET_KEY", secret_key, None)
    dashboard_user: str = var("DASHBOARD_USER", text, "admin")
    dashboard_password: str | None = var("DASHBOARD_PASSWORD", text, None)
    result_ttl: int = var("RESULT_TTL", integer(1, 10**9), 7 * DAY)
    failure_ttl: int = var("FAILURE_TTL", integer(1, 10**9), 7 * DAY)
    queued_ttl: int = var("QUEUED_TTL", integer(1, 10**9), DAY)
    # The most an anonymous client's (no credential) ended job is kept: with DAILY_QUOTA it bounds what one address
    # keeps in Redis (docs/scaling.md).
    anonymous_ttl: int = var("ANONYMOUS_TTL", integer(1, 10**9), DAY)
    job_timeout: int = var("JOB_TIMEOUT", integer(1, DAY), 180)
    retry_intervals: tuple[int, ...] = var("RETRY_INTERVALS", intervals, (5, 30, 120))
    # Worker time one submission may use over all its attempts: a retry is made only if a full-length attempt
    # still fits. 2 x JOB_TIMEOUT's default: quick transient failures keep every retry, long ones get one.
    job_time_budget: int = var("JOB_TIME_BUDGET", integer(1, 7 * DAY), 360)
    worker_processes: int = var("WORKER_PROCESSES", integer(0, 256), 2)  # from make bench on 2 cores
    worker_threads: int = var("WORKER_THREADS", integer(1, 1024), 32)
    worker_max_jobs: int = var("WORKER_MAX_JOBS", integer(0, 10**9), 50000)
    worker_max_rss_mb: int = var("WORKER_MAX_RSS_MB", integer(0, 1 << 20), 400)
    worker_hang_grace: float = var("WORKER_HANG_GRACE", number(0.1, 3600.0), 30.0)
    shutdown_grace: int = var("SHUTDOWN_GRACE", integer(0, 3600), 20)
    worker_lost_after: int = var("WORKER_LOST_AFTER", integer(3, 3600), 10)
    # Jobs of one client (credential, else address group) running at once across all workers; 0: no cap.
    # 8: an eighth of the default pool (2 processes x 32 threads), see docs/scaling.md.
    client_concurrency: int = var("CLIENT_CONCURRENCY", integer(0, 100_000), 8)
    readyz_require_worker: bool = var("READYZ_REQUIRE_WORKER", boolean, False)
    metrics_token: str | None = var("METRICS_TOKEN", token, None)
    log_format: str = var("LOG_FORMAT", choice("text", "json"), "text")
    log_level: str = var("LOG_LEVEL", choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")
    api_token: str | None = var("API_TOKEN", token, None)
    proxy_fix_x_for: int = var("PROXY_FIX_X_FOR", integer(0, 10), 0)
    proxy_fix_x_proto: int = var("PROXY_FIX_X_PROTO", integer(0, 10), 0)
    proxy_fix_x_host: int = var("PROXY_FIX_X_HOST", integer(0, 10), 0)
    ratelimit_submit: str = var("RATELIMIT_SUBMIT", rate, "60 per minute")
    # Work one client may submit per UTC day, counted like RATELIMIT_SUBMIT; 0: no quota. It bounds the jobs one
    # client keeps in Redis (about DAILY_QUOTA x days kept x a job's size; docs/scaling.md).
    daily_quota: int = var("DAILY_QUOTA", integer(0, 10**9), 1000)
    schedule_file: str | None = var("SCHEDULE_FILE", text, None)
    diagnostic_jobs: bool = var("DIAGNOSTIC_JOBS", boolean, False)  # benchmark and fault-test jobs; never in production


def diagnostic_jobs_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """DIAGNOSTIC_JOBS alone, without reading (and failing on) the rest of the environment."""
    spec = next(f for f in dataclasses.fields(Settings) if f.name == "diagnostic_jobs")
    return read(spec, os.environ if environ is None else environ)


def wait_replicas(settings: Settings) -> int:
    """How many replicas must confirm a submission: REDIS_WAIT_REPLICAS, or for ``auto`` 1 behind Sentinel (it
    exists to promote a replica, so one is there to confirm) and 0 otherwise (a lone Redis has none to wait for)."""
    if settings.redis_wait_replicas is not None:
        return settings.redis_wait_replicas
    return 1 if redis_url.is_sentinel(settings.redis_url) else 0
