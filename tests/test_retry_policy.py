"""What one submission may cost the workers, through a real worker: a timeout is retried once, and no retry is
made past the job's time budget."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import wait_for_job
from tests.slowserver import serving

pytestmark = pytest.mark.integration


def submit(client, url: str) -> str:
    response = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": url}})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_a_page_that_never_answers_is_tried_twice_not_four_times(client, start_worker):
    start_worker(extra_env={"FETCH_TIMEOUT": "1"})  # RETRY_INTERVALS=1,1 would allow three attempts
    with serving() as slow:
        job = wait_for_job(client, submit(client, slow.url(60)), timeout=30)
        assert slow.requests == 2
    assert job["status"] == "failed" and job["error"]["type"] == "FetchTimeout"
    assert "gave up after 2 attempts: it timed out 2 times" in job["error"]["message"]
    assert job["attempt"] == 2


def test_no_retry_is_made_past_the_jobs_time_budget(client, start_worker, page_server):
    start_worker(extra_env={"JOB_TIME_BUDGET": "100"})  # count_words_at_url may run 180 s: one attempt fits
    path = f"/{uuid.uuid4().hex}"
    page_server.add(path, status=503, body=b"busy")
    job = wait_for_job(client, submit(client, page_server.url(path)), timeout=30)
    assert job["status"] == "failed" and job["error"]["type"] == "HttpServerError"
    assert "gave up after 1 attempt: one more could take its 180 s limit past the 100 s" in job["error"]["message"]
    assert page_server.hits(path) == 1


def test_quick_transient_failures_keep_every_retry_within_the_budget(client, start_worker, page_server):
    start_worker()  # the default budget, 360 s: 180 s attempts fit while the failures are quick
    path = f"/{uuid.uuid4().hex}"
    page_server.add(path, status=503, body=b"busy")
    job = wait_for_job(client, submit(client, page_server.url(path)), timeout=30)
    assert job["status"] == "failed" and "gave up after 3 attempts)" in job["error"]["message"]
    assert page_server.hits(path) == 3
