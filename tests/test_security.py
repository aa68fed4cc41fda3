"""Web hardening: security headers, cookies, rate limits, API token, ProxyFix, and the dashboard's CSRF/XSS fixes."""

from __future__ import annotations

import base64
import re

import pytest
from rq import Queue

from engine.queues import SERIALIZER
from engine.settings import Settings
from tests.conftest import TEST_PASSWORD
from web import create_app

VALID = {"type": "count_words_at_url", "params": {"url": "https://example.com/"}}
AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{TEST_PASSWORD}".encode()).decode()}


def make_client(env: dict[str, str], **overrides: str):
    return create_app({"SETTINGS": Settings.from_env({**env, **overrides})}).test_client()


@pytest.mark.parametrize("path", ["/", "/api/jobs/nope", "/healthz", "/rq/"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path, headers=AUTH)
    csp = response.headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'unsafe-inline'" not in script_src and "'nonce-" in script_src
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_session_cookie_is_secure_httponly_samesite_in_production(env, redis):
    client = make_client(env, APP_ENV="production")
    cookie = client.get("/").headers["Set-Cookie"]  # the form's CSRF token lives in the session
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_max_content_length_is_set_and_enforced(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit and limit <= 1024 * 1024
    response = client.post("/api/jobs", data=b"{" + b" " * limit + b"}", content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


def test_submissions_are_rate_limited_with_retry_after(env, redis):
    client = make_client(env, RATELIMIT_SUBMIT="3 per minute")
    assert [client.post("/api/jobs", json=VALID).status_code for _ in range(3)] == [202, 202, 202]
    response = client.post("/api/jobs", json=VALID)
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "too_many_requests"
    assert int(response.headers["Retry-After"]) > 0
    assert client.get("/api/jobs/nope").status_code == 404  # reads are not limited


def test_form_submissions_are_rate_limited(env, redis):
    settings = Settings.from_env({**env, "RATELIMIT_SUBMIT": "2 per minute"})
    client = create_app({"SETTINGS": settings, "WTF_CSRF_ENABLED": False}).test_client()
    statuses = [client.post("/", data={"url": "https://example.com/"}).status_code for _ in range(3)]
    assert statuses == [303, 303, 429]
    assert int(client.post("/", data={"url": "https://example.com/"}).headers["Retry-After"]) > 0


@pytest.mark.parametrize(("x_for", "second_client_status"), [("1", 202), ("0", 429)])
def test_proxy_fix_keys_the_limit_by_the_forwarded_address(env, redis, x_for, second_client_status):
    client = make_client(env, RATELIMIT_SUBMIT="1 per minute", PROXY_FIX_X_FOR=x_for)
    assert client.post("/api/jobs", json=VALID, headers={"X-Forwarded-For": "203.0.113.1"}).status_code == 202
    second = client.post("/api/jobs", json=VALID, headers={"X-Forwarded-For": "203.0.113.2"})
    assert second.status_code == second_client_status


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-wrong-token", "Basic Zm9vOmJhcg==", "Bearer "])
def test_api_token_is_required_when_set(env, redis, header):
    client = make_client(env, API_TOKEN="s3cret-token-0123456789")
    headers = {"Authorization": header} if header else {}
    for response in (client.post("/api/jobs", json=VALID, headers=headers), client.get("/api/jobs/x", headers=headers)):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_api_token_lets_the_right_bearer_in(env, redis):
    client = make_client(env, API_TOKEN="s3cret-token-0123456789")
    response = client.post("/api/jobs", json=VALID, headers={"Authorization": "Bearer s3cret-token-0123456789"})
    assert response.status_code == 202


def test_form_post_without_csrf_token_is_refused(env, redis):
    app = create_app({"SETTINGS": Settings.from_env(env), "TESTING": True})
    response = app.test_client().post("/", data={"url": "https://example.com/"})
    assert response.status_code == 400
    assert b"expired or was not sent from this site" in response.data


# --- the dashboard ---------------------------------------------------------------------------------------

def dashboard_token(client) -> str:
    page = client.get("/rq/", headers=AUTH).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def failed_job(redis, description: str = "x") -> str:
    job = Queue("default", connection=redis, serializer=SERIALIZER).enqueue_call(
        func="jobs.wordcount.count_words_at_url", kwargs={"url": "https://example.com/"}, description=description
    )
    job.get_status()
    Queue("default", connection=redis, serializer=SERIALIZER).remove(job.id)
    with redis.pipeline() as pipe:
        job.set_status("failed", pipeline=pipe)
        job.failed_job_registry.add(job, ttl=600, pipeline=pipe, exc_string="boom")
        pipe.execute()
    return job.id


@pytest.mark.parametrize("path", ["/rq/job/{id}/delete", "/rq/job/{id}/requeue", "/rq/requeue/default"])
def test_dashboard_posts_need_the_csrf_token(client, redis, path):
    job_id = failed_job(redis)
    response = client.post(path.format(id=job_id), headers=AUTH)
    assert response.status_code == 400
    assert redis.exists(f"rq:job:{job_id}")


def test_dashboard_delete_works_with_the_token_on_json_jobs(client, redis):
    job_id = failed_job(redis)
    token = dashboard_token(client)
    response = client.post(f"/rq/job/{job_id}/delete", headers={**AUTH, "X-CSRFToken": token})
    assert response.status_code == 200 and response.get_json()["status"] == "OK"
    assert not redis.exists(f"rq:job:{job_id}")


def test_dashboard_requeue_all_works_by_post_and_refuses_get(client, redis):
    job_id = failed_job(redis)
    assert client.get("/rq/requeue/default", headers=AUTH).status_code == 405
    assert redis.llen("rq:queue:default") == 0
    token = dashboard_token(client)
    response = client.post("/rq/requeue/default", headers={**AUTH, "X-CSRFToken": token})
    assert response.status_code == 200 and response.get_json()["count"] == 1
    assert redis.lrange("rq:queue:default", 0, -1) == [job_id.encode()]


@pytest.mark.parametrize(
    "path", ["/rq/", "/rq/0/view/workers", "/rq/0/view/jobs/default/failed/8/asc/1", "/rq/0/view/job/{id}"]
)
def test_dashboard_templates_escape_every_field(client, redis, path):
    job_id = failed_job(redis, description='<img src=x onerror="alert(1)">')
    page = client.get(path.format(id=job_id), headers=AUTH).get_data(as_text=True)
    assert page.count("<%") > 0  # the page carries its underscore templates
    unescaped = re.findall(r"<%=(.*?)%>", page)
    # Only the two job-list fields that escape through jQuery's .text() before interpolating.
    assert all(expr.strip().startswith("$('<div/>').text(") for expr in unescaped), unescaped


def test_dashboard_inline_script_carries_the_csp_nonce(client):
    response = client.get("/rq/", headers=AUTH)
    nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*text/template)([^>]*)>", response.get_data(as_text=True))
    assert inline and all(f'nonce="{nonce}"' in attrs for attrs in inline)
