"""Configuration: one module reads the environment and names the variable it rejects."""

import pytest

from engine.settings import ConfigError, Settings
from jobs.wordcount.fetch import FetchPolicy
from web import create_app


def test_defaults():
    settings = Settings.from_env({})
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.port == 5000
    assert settings.dashboard_user == "admin"
    assert settings.dashboard_password is None
    policy = FetchPolicy.from_env({})
    assert policy.max_bytes == 10 * 1024 * 1024
    assert policy.timeout == 10.0
    assert policy.allow_networks == ()


@pytest.mark.parametrize(
    "url",
    ["redis://localhost:6379/0", "rediss://:pw@redis.example.com:6380/0", "unix:///tmp/redis.sock?db=1",
     "redis+sentinel://:pw@s1:26379,s2:26380/mymaster/2?ssl=true&sentinel_password=x&sentinel_socket_timeout=0.2",
     "redis+sentinel://s1/mymaster"],
)
def test_redis_url_schemes_accepted(url):
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url


def test_allow_networks_parsed():
    policy = FetchPolicy.from_env({"FETCH_ALLOW_NETWORKS": "127.0.0.0/8, 10.1.2.0/24,::1/128"})
    assert [str(n) for n in policy.allow_networks] == ["127.0.0.0/8", "10.1.2.0/24", "::1/128"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", "redis://"),
        ("REDIS_URL", "redis://localhost:notaport/0"),
        ("REDIS_URL", "unix://"),
        ("REDIS_URL", "redis+sentinel://s1:26379"),  # no service name
        ("REDIS_URL", "redis+sentinel://s1:26379/mymaster/zero"),
        ("REDIS_URL", "redis+sentinel://s1:port/mymaster"),
        ("REDIS_URL", "redis+sentinel://s1:26379/mymaster?socket_timeout=1"),  # unknown option: refused, not ignored
        ("REDIS_URL", "redis+sentinel://s1:26379/mymaster?ssl=maybe"),
        ("REDIS_WAIT_REPLICAS", "some"),
        ("REDIS_WAIT_TIMEOUT_MS", "0"),
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("WEB_CONCURRENCY", "0"),
        ("FETCH_MAX_BYTES", "-1"),
        ("FETCH_MAX_BYTES", "10MB"),
        ("FETCH_TIMEOUT", "soon"),
        ("FETCH_TIMEOUT", "0"),
        ("FETCH_ALLOW_NETWORKS", "127.0.0.0/8,not-a-network"),
        ("REDIS_TLS_VERIFY", "maybe"),
        ("APP_ENV", "staging"),
        ("SECRET_KEY", "short"),
        ("RESULT_TTL", "0"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    reader = FetchPolicy if name.startswith("FETCH_") else Settings  # the word counter's own settings
    with pytest.raises(ConfigError) as info:
        reader.from_env({name: value})
    assert info.value.name == name
    assert str(info.value).startswith(f"{name}: ")


def test_production_app_requires_secret_key():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app({"SETTINGS": Settings.from_env({"APP_ENV": "production"})})


def test_development_app_makes_its_own_secret_key():
    app = create_app({"SETTINGS": Settings.from_env({"APP_ENV": "development"})})
    assert len(app.config["SECRET_KEY"]) >= 32
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_production_cookies_are_secure():
    app = create_app({"SETTINGS": Settings.from_env({"SECRET_KEY": "x" * 32})})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
