"""The one module that reads the environment. Bad values stop start-up with a message naming the variable."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
ENVIRONMENTS = ("production", "development", "testing")

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
            schedule_file=env.get("SCHEDULE_FILE") or None,
        )


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
