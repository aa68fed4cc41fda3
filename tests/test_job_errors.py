"""count_words_at_url through a real worker: error classes, retries with backoff, Retry-After, progress."""

import time
import uuid

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from tests.conftest import wait_for_job

pytestmark = pytest.mark.integration


def submit(client, url: str) -> str:
    response = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": url}})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def unique_path() -> str:
    return f"/{uuid.uuid4().hex}"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(404, "HttpClientError"), (403, "HttpClientError"), (410, "HttpClientError")],
)
def test_client_errors_fail_at_once(client, start_worker, page_server, status, error_type):
    start_worker()
    path = unique_path()
    page_server.add(path, status=status, body=b"no")
    job = wait_for_job(client, submit(client, page_server.url(path)))
    assert job["status"] == "failed"
    assert job["error"]["type"] == error_type
    assert str(status) in job["error"]["message"]
    assert "attempts" not in job["error"]["message"]
    assert page_server.hits(path) == 1  # permanent: never retried


def test_refused_address_fails_at_once_without_retry(client, start_worker):
    start_worker()
    job = wait_for_job(client, submit(client, "http://169.254.169.254/latest/meta-data/"))
    assert job["status"] == "failed"
    assert job["error"]["type"] == "RefusedAddress"
    assert "attempts" not in job["error"]["message"]


def test_server_errors_are_retried_then_fail_saying_how_many_attempts(client, start_worker, page_server):
    start_worker()
    path = unique_path()
    page_server.add(path, status=500, body=b"oops")
    job = wait_for_job(client, submit(client, page_server.url(path)), timeout=60)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "HttpServerError"
    assert "gave up after 3 attempts" in job["error"]["message"]
    assert page_server.hits(path) == 3


def scripted(*responses: tuple[int, bytes], headers: dict[str, str] | None = None):
    """A page handler answering the given (status, body) pairs in turn; returns it and its call times."""
    calls: list[float] = []

    def handler(request):
        calls.append(time.monotonic())
        status, body = responses[min(len(calls), len(responses)) - 1]
        request.send_response(status)
        for name, value in {"Content-Type": "text/html", **(headers or {})}.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handler, calls


def test_transient_error_then_success_finishes(client, start_worker, page_server):
    start_worker()
    path = unique_path()
    handler, calls = scripted((503, b"busy"), (200, b"<p>back again</p>"))
    page_server.add_handler(path, handler)
    job = wait_for_job(client, submit(client, page_server.url(path)), timeout=60)
    assert job["status"] == "finished", job
    assert job["result"]["total_words"] == 2
    assert len(calls) == 2


def test_429_retry_after_is_honoured(client, start_worker, page_server):
    start_worker()
    path = unique_path()
    handler, calls = scripted((429, b"slow down"), (200, b"<p>ok</p>"), headers={"Retry-After": "3"})
    page_server.add_handler(path, handler)
    job = wait_for_job(client, submit(client, page_server.url(path)), timeout=60)
    assert job["status"] == "finished", job
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 3  # the server's Retry-After (3 s), not the test stack's RETRY_INTERVALS (1 s)


def test_progress_is_reported_while_downloading(client, worker, page_server):
    path = unique_path()
    body = b"<p>" + b"word " * 4000 + b"</p>"
    def slow(handler):
        # 2 KB every 0.1 s: about 1 s in all, so the job is observed mid-download.
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for start in range(0, len(body), 2048):
            handler.wfile.write(body[start : start + 2048])
            handler.wfile.flush()
            time.sleep(0.1)

    page_server.add_handler(path, slow)
    job_id = submit(client, page_server.url(path))
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        if job["progress"]:
            seen.append(job["progress"])
        if job["status"] in ("finished", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "finished", job
    downloading = [p for p in seen if p["stage"] == "downloading" and 0 < p["bytes"] < len(body)]
    assert downloading, seen
    assert all(p["total"] == len(body) for p in downloading)
    assert job["progress"] == {"stage": "counting", "bytes": len(body), "total": len(body)}
    assert job["result"]["total_words"] == 4000


def test_a_job_waiting_for_its_retry_shows_the_last_error_and_attempt(client, start_worker, page_server, env):
    start_worker(extra_env={"RETRY_INTERVALS": "5,5"})  # long enough to see it wait
    path = unique_path()
    page_server.add(path, status=503, body=b"busy")
    job_id = submit(client, page_server.url(path))
    deadline = time.monotonic() + 30
    job = client.get(f"/api/jobs/{job_id}").get_json()
    while job["status"] != "scheduled" and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job_id}").get_json()
    assert job["status"] == "scheduled", job
    assert job["error"]["type"] == "HttpServerError" and "503" in job["error"]["message"]
    assert job["attempt"] == 2  # the first attempt failed; the second waits


def test_expected_failures_log_one_line_unexpected_ones_keep_their_traceback(client, redis, start_worker,
                                                                             page_server):
    worker = start_worker("--no-scheduler", extra_env={"DIAGNOSTIC_JOBS": "1"})
    path = unique_path()
    page_server.add(path, status=404, body=b"no")
    expected = wait_for_job(client, submit(client, page_server.url(path)))
    assert expected["status"] == "failed"
    assert "Traceback" not in worker.log(), worker.log()
    assert sum(f"job_id={expected['id']}" in line and "HttpClientError" in line
               for line in worker.log().splitlines()) == 1, worker.log()
    # A catalogued function called with arguments it does not take: a bug, not a reported error.
    unexpected = Queue("default", connection=redis, serializer=JSONSerializer).enqueue_call(
        func="tests.diagnostics.noop", kwargs={"surprise": 1}, meta={"type": "noop"})
    job = wait_for_job(client, unexpected.id)
    assert job["status"] == "failed" and job["error"]["type"] == "InternalError"
    assert "Traceback" not in job["error"]["message"]
    assert "Traceback" in worker.log()  # for the operator, in the log only
