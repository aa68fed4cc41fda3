"""The reliability and security variables: defaults, and bad values named in the error."""

import pytest

from engine.settings import ConfigError, Settings


def test_defaults():
    settings = Settings.from_env({})
    assert (settings.shutdown_grace, settings.worker_lost_after) == (20, 10)
    assert settings.api_token is None and settings.ratelimit_submit == "60 per minute"
    assert (settings.proxy_fix_x_for, settings.proxy_fix_x_proto, settings.proxy_fix_x_host) == (0, 0, 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHUTDOWN_GRACE", "-1"),
        ("SHUTDOWN_GRACE", "soon"),
        ("WORKER_LOST_AFTER", "1"),
        ("API_TOKEN", "short"),
        ("API_TOKEN", "has a space in it 0123"),
        ("RATELIMIT_SUBMIT", "lots"),
        ("RATELIMIT_SUBMIT", "0 per minute"),
        ("RATELIMIT_SUBMIT", "5 per fortnight"),
        ("PROXY_FIX_X_FOR", "11"),
        ("PROXY_FIX_X_PROTO", "-1"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert caught.value.name == name


@pytest.mark.parametrize("rate", ["1 per second", "60 per minute", "1000 per hours", "5 per day"])
def test_rate_forms_accepted(rate):
    assert Settings.from_env({"RATELIMIT_SUBMIT": rate}).ratelimit_submit == rate
