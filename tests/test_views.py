"""HTML pages: the CSRF-protected form, the redirect to the job page, messages for bad input."""

import re

import pytest


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
        ({"url": "ftp://example.com/"}, "http"),
        ({"url": "not a url"}, "http"),
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
