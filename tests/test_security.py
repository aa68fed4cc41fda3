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
    # rq-dashboard compiles its row templates with new Function: 'unsafe-eval' there, and nowhere else.
    assert ("'unsafe-eval'" in script_src) == path.startswith("/rq/")
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


TOKEN = "s3cret-token-0123456789"
PROTECTED = {"type": "send_email", "params": {"to": "ada@example.com", "subject": "Hi", "body": "b"}}


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-wrong-token", "Basic Zm9vOmJhcg==", "Bearer "])
def test_api_token_is_required_when_set(env, redis, header):
    client = make_client(env, API_TOKEN=TOKEN)
    headers = {"Authorization": header} if header else {}
    # A protected job type and the list of everyone's jobs need the token; a wrong header is refused everywhere.
    responses = [client.post("/api/jobs", json=PROTECTED, headers=headers), client.get("/api/jobs", headers=headers)]
    if header:
        responses += [client.post("/api/jobs", json=VALID, headers=headers),
                      client.get("/api/jobs/x", headers=headers)]
    for response in responses:
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert "API_TOKEN" in response.get_json()["error"]["message"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert redis.llen("rq:queue:default") == 0


def test_api_token_lets_the_right_bearer_in(env, redis):
    client = make_client(env, API_TOKEN=TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/jobs", json=VALID, headers=bearer).status_code == 202
    assert client.post("/api/jobs", json=PROTECTED, headers=bearer).status_code == 202
    assert len(client.get("/api/jobs", headers=bearer).get_json()["jobs"]) == 2


def test_a_visitor_without_credentials_may_submit_public_types_and_read_a_job_by_id(env, redis):
    client = make_client(env, API_TOKEN=TOKEN)
    response = client.post("/api/jobs", json=VALID)
    assert response.status_code == 202
    assert client.get(f"/api/jobs/{response.get_json()['id']}").get_json()["status"] == "queued"


def test_protected_types_and_the_list_are_closed_when_no_token_is_configured(env, redis):
    client = make_client(env, API_TOKEN="")
    for response in (client.post("/api/jobs", json=PROTECTED), client.get("/api/jobs"),
                     client.post("/api/jobs", json=PROTECTED, headers={"Authorization": "Bearer anything-at-all"})):
        assert response.status_code in (401, 403)
        assert "API_TOKEN" in response.get_json()["error"]["message"]
    assert client.post("/api/jobs", json=PROTECTED).get_json()["error"]["code"] == "forbidden"
    assert redis.llen("rq:queue:default") == 0


# --- the form: protected types need the operator login -----------------------------------------------------

MAIL_FORM = {"type": "send_email", "to": "ada@example.com", "subject": "Hi", "body": "b"}


def form_client(env: dict[str, str], **overrides: str):
    settings = Settings.from_env({**env, **overrides})
    return create_app({"SETTINGS": settings, "WTF_CSRF_ENABLED": False}).test_client()


def test_the_form_does_not_offer_or_accept_protected_types_from_a_visitor(env, redis):
    client = form_client(env)
    page = client.get("/").get_data(as_text=True)
    assert "type=send_email" not in page and "Log in" in page
    response = client.get("/?type=send_email")
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")
    response = client.post("/", data=MAIL_FORM)
    assert response.status_code == 403
    assert "protected job type: log in as the operator" in response.get_data(as_text=True)
    assert redis.llen("rq:queue:default") == 0


def test_the_operator_login_opens_protected_types_on_the_form(env, redis):
    client = form_client(env)
    wrong = client.post("/login", data={"username": "admin", "password": "wrong", "next": "/?type=send_email"})
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.get_data(as_text=True)
    assert client.post("/", data=MAIL_FORM).status_code == 403
    right = client.post("/login", data={"username": "admin", "password": TEST_PASSWORD, "next": "/?type=send_email"})
    assert right.status_code == 303 and right.headers["Location"] == "/?type=send_email"
    assert "type=send_email" in client.get("/").get_data(as_text=True)
    assert client.post("/", data=MAIL_FORM).status_code == 303
    assert redis.llen("rq:queue:default") == 1
    client.post("/logout")
    assert client.post("/", data=MAIL_FORM).status_code == 403


def test_no_login_and_no_protected_form_without_a_dashboard_password(env, redis):
    client = form_client(env, DASHBOARD_PASSWORD="")
    assert client.get("/login").status_code == 404
    response = client.post("/", data=MAIL_FORM)
    assert response.status_code == 403 and "DASHBOARD_PASSWORD is unset" in response.get_data(as_text=True)


# --- privacy: each browser sees its own jobs ---------------------------------------------------------------

def test_the_home_page_lists_only_this_browsers_jobs(env, redis):
    app = create_app({"SETTINGS": Settings.from_env(env), "WTF_CSRF_ENABLED": False})
    alice, bob = app.test_client(), app.test_client()
    location = alice.post("/", data={"url": "https://alice.example/secret"}).headers["Location"]
    job_id = location.rsplit("/", 1)[1]
    app.test_client().post("/api/jobs", json={**VALID, "params": {"url": "https://api.example/"}})
    assert "alice.example/secret" in alice.get("/").get_data(as_text=True)
    assert f"/jobs/{job_id}" in alice.get("/recent").get_data(as_text=True)
    for page in (bob.get("/").get_data(as_text=True), bob.get("/recent").get_data(as_text=True)):
        assert "alice.example" not in page and job_id not in page and "api.example" not in page
    assert bob.get(location).status_code == 200  # a job's page stays reachable by its unguessable id


def test_the_recent_list_is_bounded(env, redis):
    client = form_client(env, RATELIMIT_SUBMIT="1000 per minute")
    for n in range(13):
        client.post("/", data={"url": f"https://example.com/{n}"})
    page = client.get("/").get_data(as_text=True)
    assert page.count('<li data-job="') == 10
    assert "https://example.com/12" in page and "https://example.com/2<" not in page


# --- one rate limit per client over every submitting route --------------------------------------------------

def test_one_limit_per_client_covers_every_submitting_route(env, redis):
    client = form_client(env, RATELIMIT_SUBMIT="6 per minute")
    job_id = client.post("/api/jobs", json=VALID).get_json()["id"]  # 1
    batch = {"type": "count_words_at_url", "items": [{"url": "https://a.example/"}, {"url": "https://b.example/"}]}
    assert client.post("/api/batches", json=batch).status_code == 202  # 2 more: a batch costs its items
    assert client.post(f"/api/jobs/{job_id}/cancel", json={}).status_code == 200  # 4
    assert client.post(f"/jobs/{job_id}/retry").status_code == 303  # 5
    assert client.post("/", data={"url": "https://example.com/"}).status_code == 303  # 6
    for refused in (client.post("/", data={"url": "https://example.com/"}), client.post("/api/jobs", json=VALID),
                    client.post(f"/api/jobs/{job_id}/cancel", json={}), client.post(f"/jobs/{job_id}/retry")):
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
    other = client.post("/api/jobs", json=VALID, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert other.status_code == 202  # another client has its own allowance


def test_a_batch_counts_as_its_number_of_items(env, redis):
    client = make_client(env, RATELIMIT_SUBMIT="3 per minute")
    items = [{"url": f"https://example.com/{n}"} for n in range(4)]
    response = client.post("/api/batches", json={"type": "count_words_at_url", "items": items})
    assert response.status_code == 429 and response.get_json()["error"]["code"] == "too_many_requests"
    assert "counts as 4 submissions" in response.get_json()["error"]["message"]
    assert redis.llen("rq:queue:default") == 0
    response = client.post("/api/batches", json={"type": "count_words_at_url", "items": items[:2]})
    assert response.status_code == 202  # a batch that can never fit is refused without being charged
    response = client.post("/api/batches", json={"type": "count_words_at_url", "items": items[:2]})
    assert response.status_code == 429 and "Try again in" in response.get_json()["error"]["message"]



def test_the_limit_costs_one_redis_round_trip(env, redis, monkeypatch):
    from redis.connection import AbstractConnection

    from web.ratelimit import ClientLimiter, Rate

    sent: list[object] = []
    original = AbstractConnection.send_packed_command
    monkeypatch.setattr(AbstractConnection, "send_packed_command",
                        lambda self, command, check_health=True: (sent.append(command),
                                                                  original(self, command, check_health))[1])
    limiter = ClientLimiter(redis, Rate(2, 60))
    verdicts = [limiter.charge("192.0.2.1", now=1000.0) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False] and verdicts[2].retry_after > 0
    assert len(sent) == 3  # one write to the socket per charge


def test_the_window_slides(redis):
    from web.ratelimit import ClientLimiter, Rate

    limiter = ClientLimiter(redis, Rate(10, 60))
    assert limiter.charge("c", cost=10, now=6000 + 50).allowed  # late in one window
    assert limiter.charge("c", cost=1, now=6060 + 10).allowed  # 1 + 10 × 5/6 of the previous window in view
    refused = limiter.charge("c", cost=1, now=6060 + 10)  # 2 + 8.3 > 10
    assert not refused.allowed and 0 < refused.retry_after < 50
    assert limiter.charge("c", cost=1, now=6070 + refused.retry_after + 2).allowed  # Retry-After was honest


@pytest.mark.parametrize(("address", "key"), [("192.0.2.1", "192.0.2.1"), ("2001:db8:1:2:3::4", "2001:db8:1:2::/64"),
                                              ("::ffff:192.0.2.1", "192.0.2.1")])
def test_clients_are_counted_by_address_and_ipv6_by_its_64(address, key):
    from web.ratelimit import address_group

    assert address_group(address) == key


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


def test_a_submission_costs_one_round_trip_with_its_charge(env, redis, monkeypatch):
    from redis.connection import AbstractConnection

    client = make_client(env, RATELIMIT_SUBMIT="100 per minute")
    assert client.post("/api/jobs", json=VALID).status_code == 202  # loads the script
    sent: list[object] = []
    original = AbstractConnection.send_packed_command
    monkeypatch.setattr(AbstractConnection, "send_packed_command",
                        lambda self, command, check_health=True: (sent.append(command),
                                                                  original(self, command, check_health))[1])
    assert client.post("/api/jobs", json=VALID).status_code == 202
    assert len(sent) == 1  # the charge and the enqueue in one script call


def test_refused_submissions_count_and_enqueue_nothing_whatever_their_path(env, redis):
    client = make_client(env, RATELIMIT_SUBMIT="2 per minute")
    assert client.post("/api/jobs", json={"type": "nope"}).status_code == 422  # charged all the same
    assert client.post("/api/jobs", json=VALID).status_code == 202
    for refused in (client.post("/api/jobs", json={"type": "nope"}), client.post("/api/jobs", json=VALID),
                    client.post("/api/jobs", json=VALID, headers={"Idempotency-Key": "k"}),
                    client.post("/api/jobs", json={**VALID, "delay_seconds": 30})):
        assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "too_many_requests"
        assert int(refused.headers["Retry-After"]) > 0
    assert redis.llen("rq:queue:default") == 1 and not redis.keys("stack:idempotency:*")
    assert not redis.zcard("rq:scheduled:default")
