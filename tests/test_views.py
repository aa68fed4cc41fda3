"""HTML pages: the CSRF-protected form, the redirect to the job page, messages for bad input."""

import re
from datetime import UTC, datetime
from typing import Annotated

import pytest
from flask import render_template
from pydantic import Field
from redis.exceptions import ConnectionError as RedisConnectionError

from engine import catalog
from engine.settings import Settings
from web import create_app, presentation, views


def csrf_token(client) -> str:
    page = client.get("/").get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, "the form carries a CSRF token"
    return match.group(1)


@pytest.fixture
def csrf_client(app):
    app.config["WTF_CSRF_ENABLED"] = True
    return app.test_client()


def test_form_has_url_field_and_csrf_token(csrf_client):
    response = csrf_client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'name="url"' in page
    assert csrf_token(csrf_client)


def test_post_without_csrf_token_is_refused(csrf_client, redis):
    response = csrf_client.post("/", data={"url": "https://example.com/"})
    assert response.status_code == 400
    assert "form expired" in response.get_data(as_text=True)
    assert redis.llen("rq:queue:default") == 0


def test_post_with_bad_csrf_token_is_refused(csrf_client, redis):
    csrf_token(csrf_client)
    response = csrf_client.post("/", data={"url": "https://example.com/", "csrf_token": "forged"})
    assert response.status_code == 400
    assert redis.llen("rq:queue:default") == 0


def test_valid_post_redirects_303_to_job_page(csrf_client, redis):
    token = csrf_token(csrf_client)
    response = csrf_client.post("/", data={"url": "https://example.com/", "top": "7", "csrf_token": token})
    assert response.status_code == 303
    match = re.fullmatch(r"/jobs/([\w-]+)", response.headers["Location"])
    assert match
    page = csrf_client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "queued" in page.get_data(as_text=True)
    api = csrf_client.get(f"/api/jobs/{match.group(1)}").get_json()
    assert api["params"] == {"url": "https://example.com/", "top": 7}


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"url": ""}, "Please fill in this field."),
        ({"url": "ftp://example.com/"}, "Only http:// and https:// URLs can be fetched"),
        ({"url": "not a url"}, "The URL contains spaces"),
        ({"url": "https://example.com/", "top": "0"}, "greater than or equal to 1"),
        ({"url": "https://example.com/", "top": "lots"}, "Enter a whole number."),
    ],
)
def test_invalid_input_rerenders_form_with_message(csrf_client, redis, form, message):
    response = csrf_client.post("/", data={**form, "csrf_token": csrf_token(csrf_client)})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert 'role="alert"' in page
    assert redis.llen("rq:queue:default") == 0


def test_submitted_values_are_escaped(csrf_client):
    response = csrf_client.post("/", data={"url": "<script>alert(1)</script>", "csrf_token": csrf_token(csrf_client)})
    page = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_unknown_job_page_is_404_html(client):
    response = client.get("/jobs/nope")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "expired or never existed" in response.get_data(as_text=True)


def test_job_page_refreshes_itself_without_javascript(client):
    job_id = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": "https://a.org/"}})
    page = client.get(f"/jobs/{job_id.get_json()['id']}").get_data(as_text=True)
    assert '<noscript><meta http-equiv="refresh"' in page
    assert "job.js" in page
    assert 'aria-live="polite"' in page


# --- The UI: generated form, priority, recent jobs, panel, cancel, try again, escaping ---------- ---------------

def post_form(client, data: dict, path: str = "/"):
    return client.post(path, data={**data, "csrf_token": csrf_token(client)})


def submit(client, url: str = "https://example.com/", **fields) -> str:
    response = post_form(client, {"url": url, **fields})
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[1]


def api(client, job_id: str) -> dict:
    return client.get(f"/api/jobs/{job_id}").get_json()


def test_form_fields_come_from_the_schema(client):
    page = client.get("/").get_data(as_text=True)
    assert '<label for="field-url">Page URL</label>' in page
    assert 'type="url"' in page and 'maxlength="2048"' in page
    assert 'name="top"' in page and 'type="number"' in page and 'min="1"' in page and 'max="100"' in page
    assert '<select id="field-priority" name="priority"' in page
    offered = [t for t in catalog.CATALOG.values() if t.access == "public"]  # to a visitor who is not logged in
    assert ('class="tabs"' in page) == (len(offered) > 1)  # a type selector only when there is a choice


@pytest.mark.parametrize(("priority", "queue"), [("high", "high"), ("default", "default"), ("low", "low")])
def test_priority_picks_the_queue(csrf_client, redis, priority, queue):
    job_id = submit(csrf_client, priority=priority)
    assert redis.lrange(f"rq:queue:{queue}", 0, -1) == [job_id.encode()]


def test_unknown_priority_is_a_message_not_a_job(csrf_client, redis):
    response = post_form(csrf_client, {"url": "https://example.com/", "priority": "urgent"})
    assert response.status_code == 422
    assert "Choose one of: High, Normal, Low." in response.get_data(as_text=True)
    assert not any(redis.llen(f"rq:queue:{name}") for name in ("high", "default", "low"))


def note(to: Annotated[str, Field(max_length=50)], body: Annotated[str, Field(max_length=5000)] = "") -> dict:
    """A second job type, to show the form is generic."""
    return {}


@pytest.fixture
def two_job_types(monkeypatch):
    monkeypatch.setitem(catalog.CATALOG, "note", catalog.job_type(note))


def test_a_second_job_type_gets_a_selector_and_its_own_form(csrf_client, two_job_types, redis):
    page = csrf_client.get("/?type=note").get_data(as_text=True)
    assert 'class="tabs"' in page and 'href="/?type=note" aria-current="page"' in page
    assert '<textarea id="field-body" name="body"' in page and 'name="url"' not in page
    response = post_form(csrf_client, {"type": "note", "to": "ann", "body": "Hello\n"})
    assert response.status_code == 303
    job = api(csrf_client, response.headers["Location"].rsplit("/", 1)[1])
    assert (job["type"], job["params"]) == ("note", {"to": "ann", "body": "Hello\n"})
    invalid = post_form(csrf_client, {"type": "note", "to": "x" * 51})
    assert invalid.status_code == 422
    assert 'id="field-to-error"' in invalid.get_data(as_text=True)


def test_unknown_job_type_in_the_form_is_404(client):
    assert client.get("/?type=nope").status_code == 404


def test_recent_jobs_are_listed_newest_first_with_links(csrf_client):
    first = submit(csrf_client, "https://one.example/")
    second = submit(csrf_client, "https://two.example/<script>x</script>")
    page = csrf_client.get("/").get_data(as_text=True)
    assert page.index(f'href="/jobs/{second}"') < page.index(f'href="/jobs/{first}"')
    assert "https://two.example/&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    assert 'class="badge badge-queued">Queued<' in page and "just now" in page


def test_home_page_still_works_when_recent_jobs_cannot_be_read(client, monkeypatch):
    def down(*args, **kwargs):
        raise RedisConnectionError("down")

    with client.session_transaction() as session:
        session["recent"] = ["some-job-id"]
    monkeypatch.setattr(views.CatalogJob, "fetch_many", down)
    response = client.get("/")
    assert response.status_code == 200
    assert "Recent jobs cannot be shown right now" in response.get_data(as_text=True)


def test_queued_job_page_says_where_it_stands(csrf_client):
    first = submit(csrf_client, "https://one.example/")
    second = submit(csrf_client, "https://two.example/")
    assert "Waiting in the queue" in csrf_client.get(f"/jobs/{first}").get_data(as_text=True)
    page = csrf_client.get(f"/jobs/{second}").get_data(as_text=True)
    assert "1 job is ahead of it." in page
    assert "No worker is serving the Normal queue right now" in page  # no worker in this test


def test_panel_is_the_changing_fragment_of_the_job_page(csrf_client):
    job_id = submit(csrf_client)
    panel = csrf_client.get(f"/jobs/{job_id}/panel")
    assert panel.status_code == 200
    text = panel.get_data(as_text=True)
    assert text.lstrip().startswith('<div id="panel" data-status="queued" data-terminal="false"')
    assert "<html" not in text and 'data-part="status"' in text and 'data-part="progress"' in text
    assert csrf_client.get("/jobs/nope/panel").status_code == 404


def test_cancel_button_cancels_a_queued_job_and_says_so(csrf_client, redis):
    job_id = submit(csrf_client, priority="low")
    page = csrf_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f'action="/jobs/{job_id}/cancel"' in page and ">Cancel</button>" in page
    response = post_form(csrf_client, {}, f"/jobs/{job_id}/cancel")
    assert (response.status_code, response.headers["Location"]) == (303, f"/jobs/{job_id}")
    page = csrf_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "The job was canceled." in page and ">Canceled<" in page and ">Try again</button>" in page
    assert api(csrf_client, job_id)["status"] == "canceled"
    assert redis.llen("rq:queue:low") == 0


def test_canceling_twice_explains_why_not(csrf_client):
    job_id = submit(csrf_client)
    post_form(csrf_client, {}, f"/jobs/{job_id}/cancel")
    csrf_client.get(f"/jobs/{job_id}")  # shows and clears the first message
    response = post_form(csrf_client, {}, f"/jobs/{job_id}/cancel")
    assert response.status_code == 303
    page = csrf_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "The job is already canceled" in page and 'role="alert"' in page


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_job_buttons_need_the_csrf_token(csrf_client, action):
    job_id = submit(csrf_client)
    response = csrf_client.post(f"/jobs/{job_id}/{action}")
    assert response.status_code == 400
    assert f'href="/jobs/{job_id}"' in response.get_data(as_text=True)
    assert api(csrf_client, job_id)["status"] == "queued"


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_job_buttons_on_unknown_jobs_are_404(csrf_client, action):
    assert post_form(csrf_client, {}, f"/jobs/nope/{action}").status_code == 404


def test_try_again_submits_a_new_job_with_the_same_params_and_priority(csrf_client, redis):
    job_id = submit(csrf_client, "https://again.example/", top="4", priority="high")
    post_form(csrf_client, {}, f"/jobs/{job_id}/cancel")
    response = post_form(csrf_client, {}, f"/jobs/{job_id}/retry")
    assert response.status_code == 303
    new_id = response.headers["Location"].rsplit("/", 1)[1]
    assert new_id != job_id
    assert api(csrf_client, new_id)["params"] == {"url": "https://again.example/", "top": 4}
    assert redis.lrange("rq:queue:high", 0, -1) == [new_id.encode()]


def test_try_again_on_a_job_no_longer_in_the_catalogue_is_a_message(csrf_client, two_job_types, monkeypatch):
    response = post_form(csrf_client, {"type": "note", "to": "ann"})
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    monkeypatch.delitem(catalog.CATALOG, "note")
    retry = post_form(csrf_client, {}, f"/jobs/{job_id}/retry")
    assert retry.status_code == 422
    assert "cannot be run again" in retry.get_data(as_text=True)


def test_dashboard_link_only_when_the_dashboard_is_mounted(client, env, redis):
    assert '<a href="/rq/">Dashboard</a>' in client.get("/").get_data(as_text=True)
    settings = Settings.from_env({**env, "DASHBOARD_PASSWORD": ""})
    bare = create_app({"SETTINGS": settings}).test_client()
    assert "Dashboard" not in bare.get("/").get_data(as_text=True)


def test_everything_a_job_carries_is_escaped(app):
    evil = "<script>alert(1)</script>"
    view = {
        "id": "x", "type": "count_words_at_url", "params": {"url": f"https://e.org/{evil}", "top": 3},
        "status": "finished", "created_at": None, "enqueued_at": None, "started_at": None, "ended_at": None,
        "progress": None, "error": None,
        "result": {"url": "u", "final_url": f"https://f.org/{evil}", "bytes": 1, "total_words": 2,
                   "unique_words": 1, "top_words": [{"word": evil, "count": 2}]},
    }
    failed = {**view, "type": evil, "status": "failed", "result": None, "error": {"type": evil, "message": evil}}
    generic = {**view, "type": "other", "result": {evil: evil, "nested": [evil]}}
    with app.test_request_context("/"):
        for data in (view, failed, generic):
            html = render_template("_job_panel.html", job=presentation.present(data, "default", {}, datetime.now(UTC)))
            assert "<script>" not in html, data["type"]
            assert "&lt;script&gt;" in html


def test_recent_fragment_says_whether_any_job_is_still_active(csrf_client):
    assert 'data-active="false"' in csrf_client.get("/recent").get_data(as_text=True)
    job_id = submit(csrf_client)
    fragment = csrf_client.get("/recent").get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="recent"') and "<html" not in fragment
    assert 'data-active="true"' in fragment and f'data-job="{job_id}"' in fragment
    post_form(csrf_client, {}, f"/jobs/{job_id}/cancel")
    assert 'data-active="false"' in csrf_client.get("/recent").get_data(as_text=True)
