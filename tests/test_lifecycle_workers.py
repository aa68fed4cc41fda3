"""The lifecycle through real worker processes: priority order, scheduling, one scheduler, cancel/stop, retention."""

import time

import pytest

from engine.settings import Settings
from tests.conftest import wait_for_job
from tests.slowserver import serving
from tests.test_api import assert_error
from web import create_app

pytestmark = pytest.mark.integration

BINARY = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def slow_server():
    with serving() as server:
        yield server


def submit(client, url: str, **extra) -> dict:
    response = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": url}, **extra})
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def wait_for_status(client, job_id: str, wanted: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/jobs/{job_id}").get_json()
        if body["status"] == wanted or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_workers_drain_high_before_default_before_low(client, start_worker, page_server):
    url = page_server.url("/")
    ids = {priority: [submit(client, url, priority=priority)["id"] for _ in range(3)]
           for priority in ("low", "default", "high")}  # submitted lowest first, so order is not FIFO
    # One job at a time, so start order is claim order (with free threads all nine would start at once).
    worker = start_worker("--burst", "--no-scheduler", "--processes", "1", "--threads", "1")
    assert worker.process.wait(60) == 0, worker.log()
    started = {
        p: [client.get(f"/api/jobs/{i}").get_json()["started_at"] for i in job_ids] for p, job_ids in ids.items()
    }
    assert max(started["high"]) < min(started["default"]), started
    assert max(started["default"]) < min(started["low"]), started


def test_delayed_job_waits_then_runs(client, worker, page_server):
    job = submit(client, page_server.url("/"), delay_seconds=2)
    assert job["status"] == "scheduled"
    done = wait_for_job(client, job["id"], timeout=60)
    assert done["status"] == "finished", worker.log()
    waited = _ts(done["started_at"]) - _ts(job["created_at"])
    assert waited >= 1.9, done  # not before its time, however loaded the machine (RQ's scheduler polls each second)


def test_exactly_one_scheduler_among_two_workers(client, redis, start_worker, page_server):
    workers = [start_worker("--name", f"w{n}") for n in range(2)]
    jobs = [submit(client, page_server.url("/"), delay_seconds=1, priority=p)
            for p in ("high", "default", "low") for _ in range(4)]
    for job in jobs:
        assert wait_for_job(client, job["id"], timeout=60)["status"] == "finished", [w.log() for w in workers]
    holders = {redis.get(f"rq:scheduler-lock:{queue}") for queue in ("high", "default", "low")}
    assert len(holders) == 1 and None not in holders, holders  # one scheduler holds every queue's lock
    assert len(redis.keys("rq:scheduler:*")) == 1  # and only one scheduler process registered itself
    for job in jobs:  # each scheduled job was moved to its queue, and so run, exactly once
        assert redis.xlen(f"rq:results:{job['id']}") == 1
    logs = [w.log() for w in workers]
    assert sum("Acquired scheduler lock" in log for log in logs) == 1, logs


def test_wait_answers_when_the_job_ends(client, worker, page_server):
    job = submit(client, page_server.url("/"))
    started = time.monotonic()
    body = client.get(f"/api/jobs/{job['id']}?wait=25").get_json()
    assert body["status"] == "finished", worker.log()
    assert time.monotonic() - started < 20  # as soon as it ended, not after the full wait


def test_cancel_started_job_stops_it(client, worker, slow_server):
    job = submit(client, slow_server.url(30))
    assert wait_for_status(client, job["id"], "started")["status"] == "started", worker.log()
    response = client.post(f"/api/jobs/{job['id']}/cancel", json={})
    assert response.status_code == 200
    assert response.get_json()["status"] in ("started", "stopped")  # the API waits up to 5 s for the worker
    body = wait_for_status(client, job["id"], "stopped")
    assert body["status"] == "stopped", worker.log()
    assert body["error"]["type"] == "Stopped"
    assert_error(client.post(f"/api/jobs/{job['id']}/cancel", json={}), 409, "not_cancelable")


def test_cancel_finished_or_failed_job_is_409(client, worker, page_server):
    finished = submit(client, page_server.url("/"))
    page_server.add("/binary", body=b"\x00\x01", headers=BINARY)
    failed = submit(client, page_server.url("/binary"))
    assert wait_for_job(client, finished["id"])["status"] == "finished"
    assert wait_for_job(client, failed["id"])["status"] == "failed"
    for job_id, status in ((finished["id"], "finished"), (failed["id"], "failed")):
        error = assert_error(client.post(f"/api/jobs/{job_id}/cancel", json={}), 409, "not_cancelable")
        assert status in error["message"]


def test_failed_and_finished_jobs_keep_the_configured_ttls(client, redis, worker, page_server):
    page_server.add("/binary", body=b"\x00\x01", headers=BINARY)
    finished = submit(client, page_server.url("/"))
    failed = submit(client, page_server.url("/binary"))
    assert wait_for_job(client, finished["id"])["status"] == "finished"
    assert wait_for_job(client, failed["id"])["status"] == "failed"
    week = 7 * 24 * 3600
    assert week - 60 < redis.ttl(f"rq:job:{finished['id']}") <= week
    assert week - 60 < redis.ttl(f"rq:job:{failed['id']}") <= week  # not RQ's default of a year


def test_expired_failed_job_is_404(env, redis, worker, page_server):
    settings = Settings.from_env({**env, "FAILURE_TTL": "1"})
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    page_server.add("/binary", body=b"\x00\x01", headers=BINARY)
    job = submit(client, page_server.url("/binary"))
    assert wait_for_job(client, job["id"])["status"] == "failed"
    deadline = time.monotonic() + 15
    while client.get(f"/api/jobs/{job['id']}").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.2)
    error = assert_error(client.get(f"/api/jobs/{job['id']}"), 404, "not_found")
    assert "expired or never existed" in error["message"]


def test_job_left_queued_expires(env, redis):
    settings = Settings.from_env({**env, "QUEUED_TTL": "2"})
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    job = submit(client, "https://example.com/")
    # Milliseconds: TTL rounds to the nearest second, so a slow moment could read 2 s as 0 or 1.
    assert 0 < redis.pttl(f"rq:job:{job['id']}") <= 2000
    deadline = time.monotonic() + 15
    while client.get(f"/api/jobs/{job['id']}").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert_error(client.get(f"/api/jobs/{job['id']}"), 404, "not_found")


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
