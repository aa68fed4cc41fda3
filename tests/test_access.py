"""Operator access and who a client is: the login's redirect, revocable sessions, the dashboard's login, and
protected jobs kept from those without the credential."""

from __future__ import annotations

import pytest

from engine.settings import Settings
from tests.conftest import BEARER, TEST_PASSWORD
from web import create_app


def form_client(env: dict[str, str], **overrides: str):
    settings = Settings.from_env({**env, **overrides})
    return create_app({"SETTINGS": settings, "WTF_CSRF_ENABLED": False}).test_client()


def log_in(client, **extra: str):
    return client.post("/login", data={"username": "admin", "password": TEST_PASSWORD, **extra})


# --- who the client is -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "address", "expected"), [
    ({}, "192.0.2.7", "address:192.0.2.7"),
    ({}, "2001:db8:1:2:3::4", "address:2001:db8:1:2::/64"),
    (BEARER, "192.0.2.7", "token:"),
    ({"Authorization": "Bearer wrong-token-0123456789"}, "192.0.2.7", "address:192.0.2.7"),
])
def test_the_client_key_is_the_credential_else_the_address_group(env, redis, headers, address, expected):
    from web.access import client_key

    app = create_app({"SETTINGS": Settings.from_env(env)})
    with app.test_request_context("/api/jobs", headers=headers, environ_base={"REMOTE_ADDR": address}):
        key = client_key()
    assert key.startswith(expected) and (expected != "token:" or env["API_TOKEN"] not in key)


def test_the_operator_session_is_a_client_of_its_own_on_the_pages(env, redis):
    from web.access import client_key

    client = form_client(env)
    log_in(client)
    with client:
        client.get("/")
        assert client_key() == "operator"
