"""Operator access and who a client is: the login's redirect, revocable sessions, the dashboard's login, and
protected jobs kept from those without the credential."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

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


# --- where the login goes on to ----------------------------------------------------------------------------------

SITE = "https://stack.example/login"


def followed(location: str) -> str:
    """The URL a browser goes to for ``location`` (WHATWG: tabs and newlines dropped, backslash read as slash)."""
    cleaned = location.translate({9: None, 10: None, 13: None}).replace("\\", "/")
    return urljoin(SITE, cleaned)


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "///evil.example/", "/\\evil.example/", "\\\\evil.example/",
    "\\/evil.example/", "/\t/evil.example", "/\r\n/evil.example", "\t//evil.example", "/\n/evil.example",
    " //evil.example", "javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "http:evil.example", "https:/evil.example", "/é/../evil",
    "evil.example", "/\x00/evil.example",
])
def test_login_goes_on_only_to_this_site(env, redis, target):
    response = log_in(form_client(env), next=target)
    assert response.status_code == 303 and response.headers["Location"] == "/"


@pytest.mark.parametrize("target", [
    "/?type=send_email", "/jobs/0b5c3c8e-0000-4000-8000-000000000000", "/%2F%2Fevil.example", "/%5Cevil.example",
    "/%09/evil.example", "/rq/",
])
def test_login_goes_on_to_a_path_of_this_site_as_given(env, redis, target):
    response = log_in(form_client(env), next=target)
    assert response.headers["Location"] == target
    assert urlsplit(followed(response.headers["Location"])).netloc == "stack.example"


@pytest.mark.parametrize("target", ["/a\r\nSet-Cookie: x=1", "/a\nb", "/a\rb"])
def test_a_newline_in_next_is_dropped_on_both_login_pages(env, redis, target):
    client = form_client(env)
    page = client.get("/login", query_string={"next": target})
    assert page.status_code == 200 and 'name="next" value="/"' in page.get_data(as_text=True)
    assert log_in(client, next=target).headers["Location"] == "/"


# --- operator sessions end on the server -------------------------------------------------------------------------

MAIL_FORM = {"type": "send_email", "to": "ada@example.com", "subject": "Hi", "body": "b"}


def test_a_cookie_saved_before_logout_opens_nothing_after_it(env, redis):
    client = form_client(env)
    log_in(client)
    saved = client.get_cookie("session").value
    other = form_client(env)  # another browser of the operator's, logged in before the logout
    log_in(other)
    assert client.post("/logout").status_code == 303
    replay = form_client(env)
    replay.set_cookie("session", saved)
    for browser in (replay, other):
        assert browser.post("/", data=MAIL_FORM).status_code == 403
        assert "Log out" not in browser.get("/").get_data(as_text=True)
    assert redis.llen("rq:queue:default") == 0
    log_in(replay)
    assert replay.post("/", data=MAIL_FORM).status_code == 303  # a new login works again


def test_a_visitors_logout_ends_nobody_elses_session(env, redis):
    operator = form_client(env)
    log_in(operator)
    visitor = form_client(env)
    assert visitor.post("/logout").status_code == 303
    assert operator.post("/", data=MAIL_FORM).status_code == 303


def test_a_password_change_ends_every_earlier_session(env, redis):
    client = form_client(env)
    log_in(client)
    saved = client.get_cookie("session").value
    changed = form_client(env, DASHBOARD_PASSWORD="a-new-operator-password")
    changed.set_cookie("session", saved)
    assert changed.post("/", data=MAIL_FORM).status_code == 403
    assert client.post("/", data=MAIL_FORM).status_code == 303  # the old deployment still honours it


def test_the_csrf_token_is_new_after_login(env, redis):
    import re

    client = create_app({"SETTINGS": Settings.from_env(env)}).test_client()
    login_page = client.get("/login").get_data(as_text=True)
    before = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page).group(1)
    response = log_in(client, csrf_token=before)
    assert response.status_code == 303
    refused = client.post("/", data={**MAIL_FORM, "csrf_token": before})
    assert refused.status_code == 400 and redis.llen("rq:queue:default") == 0
    page = client.get("/?type=send_email").get_data(as_text=True)
    after = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post("/", data={**MAIL_FORM, "csrf_token": after}).status_code == 303


def test_a_session_is_not_honoured_while_redis_cannot_say_it_is_live(env, redis, monkeypatch):
    from redis.exceptions import ConnectionError as RedisDown

    client = form_client(env)
    log_in(client)
    monkeypatch.setattr("web.access._generation", lambda: (_ for _ in ()).throw(RedisDown("down")))
    page = client.get("/")
    assert page.status_code == 200 and "Log out" not in page.get_data(as_text=True)


# --- logs ----------------------------------------------------------------------------------------------------

def test_a_logged_value_cannot_start_a_line_of_its_own(env, redis):
    import io
    import logging

    from engine import logs

    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure("text", "INFO", stream)
    try:
        app = create_app({"SETTINGS": Settings.from_env(env)})
        app.add_url_rule("/boom/<part>", "boom", lambda part: 1 / 0)
        assert app.test_client().get("/boom/x%0A2030-01-01 INFO web forged%0D%E2%80%A8").status_code == 500
        logging.getLogger("job").info("job %s", "id\nERROR forged")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert any(line.endswith("unhandled error on GET /boom/x\\n2030-01-01 INFO web forged\\r\\u2028")
               for line in lines)
    assert any(line.endswith("job id\\nERROR forged") for line in lines)
    assert not any("forged" in line and "unhandled" not in line and "job id" not in line for line in lines)


# --- protected jobs stay with those who may see them -------------------------------------------------------------

MAIL = {"type": "send_email", "params": {"to": "ada@example.com", "subject": "Secret", "body": "the body"}}
UNKNOWN_ID = "0b5c3c8e-0000-4000-8000-000000000000"


def mail_job(client) -> str:
    response = client.post("/api/jobs", json=MAIL)
    assert response.status_code == 202
    return response.get_json()["id"]


def same_as_unknown(response, job_id: str, unknown) -> bool:
    """The answer for ``job_id`` reads exactly as the one for an id that never existed."""
    text = response.get_data(as_text=True).replace(job_id, UNKNOWN_ID)
    return response.status_code == unknown.status_code == 404 and text == unknown.get_data(as_text=True)


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/jobs/{}"), ("GET", "/api/jobs/{}?wait=5"),
                                              ("POST", "/api/jobs/{}/cancel")])
def test_a_protected_job_is_an_unknown_id_to_the_api_without_the_token(client, anonymous, redis, method, path):
    job_id = mail_job(client)
    headers = {"Content-Type": "application/json"}
    answer = anonymous.open(path.format(job_id), method=method, headers=headers)
    assert same_as_unknown(answer, job_id, anonymous.open(path.format(UNKNOWN_ID), method=method, headers=headers))
    assert "ada@example.com" not in answer.get_data(as_text=True)
    assert client.get(f"/api/jobs/{job_id}").get_json()["params"]["to"] == ["ada@example.com"]
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "queued"  # the cancel did nothing


def test_the_token_holder_may_cancel_a_protected_job(client):
    job_id = mail_job(client)
    assert client.post(f"/api/jobs/{job_id}/cancel", json={}).get_json()["status"] == "canceled"


@pytest.mark.parametrize(("method", "path"), [("GET", "/jobs/{}"), ("GET", "/jobs/{}/panel"),
                                              ("POST", "/jobs/{}/cancel"), ("POST", "/jobs/{}/retry")])
def test_a_protected_job_is_an_unknown_id_to_the_pages_without_the_login(env, client, redis, method, path):
    job_id = mail_job(client)
    visitor = form_client(env)
    answer = visitor.open(path.format(job_id), method=method)
    assert same_as_unknown(answer, job_id, visitor.open(path.format(UNKNOWN_ID), method=method))
    assert redis.hget(f"rq:job:{job_id}", "status") == b"queued" and redis.llen("rq:queue:default") == 1
    operator = form_client(env)
    log_in(operator)
    assert operator.open(path.format(job_id), method=method).status_code in (200, 303)


def test_the_recent_list_hides_protected_jobs_after_logout(env, redis):
    browser = form_client(env)
    log_in(browser)
    browser.post("/", data=MAIL_FORM)
    assert "ada@example.com" in browser.get("/").get_data(as_text=True)
    browser.post("/logout")
    assert "ada@example.com" not in browser.get("/").get_data(as_text=True)
    log_in(browser)
    assert "ada@example.com" in browser.get("/").get_data(as_text=True)


# --- the API changes state only for JSON requests, which a browser must preflight --------------------------------

SIMPLE_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]


@pytest.mark.parametrize("content_type", SIMPLE_TYPES)
@pytest.mark.parametrize("path", ["/api/jobs", "/api/batches", "/api/jobs/{}/cancel"])
def test_state_changing_api_calls_need_the_json_content_type(client, redis, path, content_type):
    job_id = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": "https://a.example/"}},
                         ).get_json()["id"]
    headers = {"Content-Type": content_type} if content_type else {}
    body = '{"type": "count_words_at_url", "params": {"url": "https://b.example/"}}'
    response = client.post(path.format(job_id), data=body, headers=headers)
    assert response.status_code == 415 and response.get_json()["error"]["code"] == "unsupported_media_type"
    assert redis.llen("rq:queue:default") == 1 and redis.hget(f"rq:job:{job_id}", "status") == b"queued"


def test_options_answers_json_without_any_cors_approval(anonymous):
    response = anonymous.options("/api/jobs", headers={"Origin": "https://evil.example",
                                                       "Access-Control-Request-Method": "POST"})
    assert response.status_code == 200 and response.get_json() == {"allow": ["GET", "HEAD", "OPTIONS", "POST"]}
    assert not [name for name in response.headers.keys() if name.lower().startswith("access-control-")]


@pytest.mark.parametrize("path", ["/api/jobs", "/api/batches"])
def test_a_chunked_body_over_the_limit_is_too_large_not_malformed(anonymous, app, path):
    import io

    big = b'{"type": "count_words_at_url", "params": {"url": "' + b"a" * 600_000 + b'"}}'
    response = anonymous.post(path, input_stream=io.BytesIO(big), content_type="application/json",
                              environ_overrides={"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"})
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "request_entity_too_large"


# --- idempotency keys belong to their client ---------------------------------------------------------------------

PUBLIC = {"type": "count_words_at_url", "params": {"url": "https://example.com/"}}


def from_address(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_another_clients_idempotency_key_is_another_key(app, redis):
    alice, bob = from_address(app, "192.0.2.1"), from_address(app, "198.51.100.2")
    key = {"Idempotency-Key": "order-1"}
    first = alice.post("/api/jobs", json=PUBLIC, headers=key)
    assert first.status_code == 202
    same_body = bob.post("/api/jobs", json=PUBLIC, headers=key)  # does not get Alice's job
    assert same_body.status_code == 202 and same_body.get_json()["id"] != first.get_json()["id"]
    squatted = from_address(app, "203.0.113.3").post("/api/jobs", json={**PUBLIC, "priority": "high"},
                                                     headers={"Idempotency-Key": "order-2"})
    assert squatted.status_code == 202
    assert alice.post("/api/jobs", json=PUBLIC, headers={"Idempotency-Key": "order-2"}).status_code == 202  # no 409
    replay = alice.post("/api/jobs", json=PUBLIC, headers=key)
    assert replay.status_code == 200 and replay.get_json()["id"] == first.get_json()["id"]


def test_the_token_scopes_a_key_wherever_its_holder_calls_from(app, redis):
    key = {"Idempotency-Key": "nightly", **BEARER}
    first = from_address(app, "192.0.2.1").post("/api/jobs", json=PUBLIC, headers=key).get_json()["id"]
    again = from_address(app, "198.51.100.2").post("/api/jobs", json=PUBLIC, headers=key)
    assert again.status_code == 200 and again.get_json()["id"] == first
    anonymous = from_address(app, "192.0.2.1").post("/api/jobs", json=PUBLIC, headers={"Idempotency-Key": "nightly"})
    assert anonymous.status_code == 202 and anonymous.get_json()["id"] != first
