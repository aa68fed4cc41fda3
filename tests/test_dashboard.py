"""rq-dashboard at /rq: behind the operator login (HTTP Basic for scripts), reading JSON-serialised jobs."""

import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from engine.settings import Settings
from tests.conftest import TEST_PASSWORD
from web import create_app


def csrf_token(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("path", ["/rq/", "/rq/0/data/queues.json", "/rq/0/view/workers"])
def test_dashboard_sends_a_visitor_to_the_login(client, path):
    response = client.get(path)
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query) == {"next": [path]}


def test_the_pages_login_opens_the_dashboard_and_logout_closes_it(client):
    login = client.post("/login", data={"username": "admin", "password": TEST_PASSWORD, "next": "/rq/",
                                        "csrf_token": csrf_token(client)})
    assert login.status_code == 303 and login.headers["Location"] == "/rq/"
    assert "Queues" in client.get("/rq/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    assert client.get("/rq/").status_code == 303


@pytest.mark.parametrize(("user", "password"), [("admin", "wrong"), ("root", TEST_PASSWORD), ("", "")])
def test_dashboard_refuses_wrong_credentials(client, user, password):
    response = client.get("/rq/", headers=basic(user, password))
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Basic")


def test_basic_guesses_share_the_login_rate_limit_and_count_harder(client, redis):
    wrong = basic("admin", "wrong")
    statuses = [client.get("/rq/", headers=wrong).status_code for _ in range(8)]
    assert statuses[:6] == [401] * 6 and statuses[6:] == [429, 429]  # 6 × 10 = the limit of 60 per minute
    assert client.get("/rq/", headers=basic("admin", TEST_PASSWORD)).status_code == 429  # the right one too now
    login = client.post("/login", data={"username": "admin", "password": TEST_PASSWORD,
                                        "csrf_token": csrf_token(client)})
    assert login.status_code == 429  # the same counter as the pages' login


def test_wrong_passwords_at_the_pages_login_count_harder_too(client):
    statuses = [client.post("/login", data={"username": "admin", "password": "wrong",
                                            "csrf_token": csrf_token(client)}).status_code for _ in range(7)]
    assert statuses == [401] * 6 + [429]


@pytest.mark.parametrize("path", [
    "/rq/0/view/job/%00", "/rq/0/view/job/a%0Ab", "/rq/0/data/job/%00.json", "/rq/0/data/job/a%0D%0Ab.json",
    "/rq/0/view/job/" + "a" * 300, "/rq/0/view/jobs/default/%00/8/asc/1", "/rq/0/data/jobs/%00/failed/8/asc/1.json",
    "/rq/0/data/jobs/default/nope/8/asc/1.json", "/rq/0/data/jobs/default/failed/0/asc/1.json",
    "/rq/0/data/jobs/default/failed/x/asc/1.json", "/rq/0/data/jobs/default/failed/8/up/1.json",
    "/rq/0/data/jobs/default/failed/8/asc/0.json", "/rq/9/view/queues", "/rq/99/data/queues.json",
])
def test_invalid_addresses_under_the_dashboard_are_not_found(client, path):
    response = client.get(path, headers=basic("admin", TEST_PASSWORD))
    assert response.status_code == 404 and b"No such" in response.data


@pytest.mark.parametrize(("path", "status"), [
    ("/rq/0/view/jobs", 200), ("/rq/0/view/jobs/default/failed/8/dsc/1", 200),
    ("/rq/0/data/jobs/default/scheduled/200/asc/3.json", 200), ("/rq/0/view/job/nope-1", 404),
])
def test_the_dashboards_own_addresses_still_answer(client, path, status):
    assert client.get(path, headers=basic("admin", TEST_PASSWORD)).status_code == status


@pytest.mark.parametrize("path", ["/rq/job/%00/delete", "/rq/job/a%0Ab/requeue", "/rq/requeue/%00",
                                  "/rq/queue/default/%00/empty", "/rq/queue/%0A/compact"])
def test_invalid_addresses_in_dashboard_posts_are_not_found(client, path):
    auth = basic("admin", TEST_PASSWORD)
    page = client.get("/rq/", headers=auth).get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert client.post(path, headers={**auth, "X-CSRFToken": token}).status_code == 404


def test_dashboard_shows_json_jobs_after_login(client):
    job_id = client.post(
        "/api/jobs", json={"type": "count_words_at_url", "params": {"url": "https://example.com/"}}
    ).get_json()["id"]
    auth = basic("admin", TEST_PASSWORD)
    assert client.get("/rq/", headers=auth).status_code == 200
    queues = client.get("/rq/0/data/queues.json", headers=auth).get_json()
    assert {"name": "default", "count": 1} in [{"name": q["name"], "count": q["count"]} for q in queues["queues"]]
    job = client.get(f"/rq/0/data/job/{job_id}.json", headers=auth).get_json()
    assert job["id"] == job_id
    assert "count_words_at_url" in job["description"]


def test_no_dashboard_without_password(env, redis):
    settings = Settings.from_env({**env, "DASHBOARD_PASSWORD": ""})
    client = create_app({"SETTINGS": settings}).test_client()
    assert client.get("/rq/").status_code == 404
