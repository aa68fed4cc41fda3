"""rq-dashboard at /rq: behind HTTP Basic auth, reading JSON-serialised jobs."""

import base64

import pytest

from engine.settings import Settings
from tests.conftest import TEST_PASSWORD
from web import create_app


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("path", ["/rq/", "/rq/0/data/queues.json", "/rq/0/view/workers"])
def test_dashboard_requires_credentials(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(("user", "password"), [("admin", "wrong"), ("root", TEST_PASSWORD), ("", "")])
def test_dashboard_refuses_wrong_credentials(client, user, password):
    assert client.get("/rq/", headers=basic(user, password)).status_code == 401


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
