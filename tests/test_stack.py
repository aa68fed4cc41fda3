"""End to end through real processes: API → Redis → worker process → result read back."""

import pytest

from tests.conftest import wait_for_job

pytestmark = pytest.mark.integration


def test_count_words_end_to_end(client, worker, page_server):
    response = client.post(
        "/api/jobs", json={"type": "count_words_at_url", "params": {"url": page_server.url("/"), "top": 3}}
    )
    assert response.status_code == 202
    job = wait_for_job(client, response.get_json()["id"])
    assert job["status"] == "finished", (job, worker.log())
    result = job["result"]
    # "The cat and the hat. The cat don't sleep." - style and script do not count; c<b>at</b> is one word.
    assert result["total_words"] == 9
    assert result["unique_words"] == 6
    assert result["top_words"] == [
        {"word": "the", "count": 3},
        {"word": "cat", "count": 2},
        {"word": "and", "count": 1},
    ]
    assert result["url"] == page_server.url("/")
    assert result["final_url"] == page_server.url("/")
    assert result["status_code"] == 200
    assert result["content_type"].startswith("text/html")
    assert result["bytes"] > 0
    assert job["started_at"] and job["ended_at"] and job["error"] is None
    assert job["progress"]["stage"] == "counting"


def test_failed_job_has_readable_error(client, worker, page_server):
    page_server.add("/missing", status=404, body=b"gone", headers={"Content-Type": "text/html"})
    params = {"url": page_server.url("/missing")}
    response = client.post("/api/jobs", json={"type": "count_words_at_url", "params": params})
    job = wait_for_job(client, response.get_json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["type"] == "HttpClientError"
    assert "404" in job["error"]["message"]
    assert "Traceback" not in job["error"]["message"]
