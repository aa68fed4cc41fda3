"""The lifecycle HTTP contract against real Redis, no worker: priority, scheduling, idempotency, list, wait, cancel."""

from datetime import UTC, datetime, timedelta

import pytest

from engine import lifecycle
from tests.test_api import VALID, assert_error


def submit(client, **extra):
    return client.post("/api/jobs", json={**VALID, **extra})


@pytest.mark.parametrize("priority", ["high", "default", "low"])
def test_priority_picks_the_queue(client, redis, priority):
    job = submit(client, priority=priority).get_json()
    assert redis.lrange(f"rq:queue:{priority}", 0, -1) == [job["id"].encode()]
    assert sum(redis.llen(f"rq:queue:{name}") for name in ("high", "default", "low")) == 1


def test_priority_defaults_to_default(client, redis):
    job = submit(client).get_json()
    assert redis.lrange("rq:queue:default", 0, -1) == [job["id"].encode()]


def test_delay_seconds_schedules_the_job(client, redis):
    response = submit(client, delay_seconds=600)
    assert response.status_code == 202
    job = response.get_json()
    assert job["status"] == "scheduled"
    assert redis.llen("rq:queue:default") == 0
    due = redis.zscore("rq:scheduled:default", job["id"])
    assert abs(due - (datetime.now(UTC) + timedelta(seconds=600)).timestamp()) < 60
    assert client.get(f"/api/jobs/{job['id']}").get_json()["status"] == "scheduled"


def test_at_with_zone_schedules_the_job_at_that_time(client, redis):
    when = datetime.now(UTC) + timedelta(days=29)
    at = when.astimezone(datetime.now().astimezone().tzinfo).isoformat()  # any zone is fine
    job = submit(client, at=at, priority="low").get_json()
    assert job["status"] == "scheduled"
    assert abs(redis.zscore("rq:scheduled:low", job["id"]) - when.timestamp()) < 1
    # A job due in 29 days must not expire before it runs: its TTL covers the wait plus the queued limit.
    assert redis.ttl(f"rq:job:{job['id']}") > 29 * 24 * 3600


def future(**delta) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"delay_seconds": -5}, "delay_seconds"),
        ({"delay_seconds": 0}, "delay_seconds"),
        ({"delay_seconds": 31 * 24 * 3600}, "delay_seconds"),
        ({"delay_seconds": "10"}, "delay_seconds"),
        ({"delay_seconds": True}, "delay_seconds"),
        ({"at": future(seconds=-60)}, "at"),
        ({"at": future(days=31)}, "at"),
        ({"at": "2030-01-01T09:00:00"}, "at"),  # no zone
        ({"at": "next tuesday"}, "at"),
        ({"at": "9999-12-31T23:59:59-23:59"}, "at"),  # past datetime's range in UTC: was a 500
        ({"at": "0001-01-01T00:00:00+23:59"}, "at"),
        ({"at": 1893456000}, "at"),
        ({"at": future(hours=1), "delay_seconds": 5}, "at"),
        ({"priority": "urgent"}, "priority"),
        ({"priority": 1}, "priority"),
    ],
)
def test_bad_options_get_422_naming_the_field(client, redis, extra, field):
    error = assert_error(submit(client, **extra), 422, "invalid_request")
    assert field in error["message"]
    assert redis.keys("rq:job:*") == []


def test_idempotency_key_returns_the_same_job(client, redis):
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/api/jobs", json=VALID, headers=headers)
    second = client.post("/api/jobs", json=VALID, headers=headers)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.get_json()["id"] == first.get_json()["id"]
    assert redis.llen("rq:queue:default") == 1
    assert 23 * 3600 < redis.ttl(next(iter(redis.keys("stack:idempotency:*")))) <= 24 * 3600


def test_idempotency_key_with_another_body_is_409(client, redis):
    headers = {"Idempotency-Key": "order-43"}
    client.post("/api/jobs", json=VALID, headers=headers)
    other = {**VALID, "params": {"url": "https://example.org/"}}
    assert_error(client.post("/api/jobs", json=other, headers=headers), 409, "idempotency_conflict")
    assert redis.llen("rq:queue:default") == 1


def test_different_idempotency_keys_make_different_jobs(client, redis):
    a = client.post("/api/jobs", json=VALID, headers={"Idempotency-Key": "a"}).get_json()
    b = client.post("/api/jobs", json=VALID, headers={"Idempotency-Key": "b"}).get_json()
    assert a["id"] != b["id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"])
def test_bad_idempotency_key_is_400(client, key):
    assert_error(client.post("/api/jobs", json=VALID, headers={"Idempotency-Key": key}), 400, "bad_request")


def test_invalid_body_with_idempotency_key_creates_no_claim(client, redis):
    bad = {"type": "count_words_at_url", "params": {}}
    assert_error(client.post("/api/jobs", json=bad, headers={"Idempotency-Key": "k"}), 422, "invalid_params")
    assert redis.keys("stack:idempotency:*") == []


def test_list_is_newest_first_with_cursor_pages(client):
    ids = [submit(client).get_json()["id"] for _ in range(5)]
    page1 = client.get("/api/jobs?limit=2").get_json()
    assert [job["id"] for job in page1["jobs"]] == ids[::-1][:2]
    page2 = client.get(f"/api/jobs?limit=2&cursor={page1['next_cursor']}").get_json()
    assert [job["id"] for job in page2["jobs"]] == ids[::-1][2:4]
    page3 = client.get(f"/api/jobs?limit=2&cursor={page2['next_cursor']}").get_json()
    assert [job["id"] for job in page3["jobs"]] == ids[::-1][4:]
    assert page3["next_cursor"] is None  # the index ran out: no further page


def test_full_last_page_leads_to_an_empty_one(client):
    ids = [submit(client).get_json()["id"] for _ in range(2)]
    page = client.get("/api/jobs?limit=2").get_json()
    assert [job["id"] for job in page["jobs"]] == ids[::-1]
    end = client.get(f"/api/jobs?limit=2&cursor={page['next_cursor']}").get_json()
    assert end == {"jobs": [], "next_cursor": None}


def test_list_filters_by_status_and_type(client):
    queued = submit(client).get_json()["id"]
    scheduled = submit(client, delay_seconds=300).get_json()["id"]
    assert [j["id"] for j in client.get("/api/jobs?status=scheduled").get_json()["jobs"]] == [scheduled]
    assert [j["id"] for j in client.get("/api/jobs?status=queued").get_json()["jobs"]] == [queued]
    assert len(client.get("/api/jobs?type=count_words_at_url").get_json()["jobs"]) == 2
    assert client.get("/api/jobs?type=send_nothing").get_json()["jobs"] == []


def test_list_cost_is_bounded_per_request(client, redis, monkeypatch):
    monkeypatch.setattr(lifecycle, "LIST_SCAN_BUDGET", 3)
    for _ in range(5):
        submit(client)
    submit(client, delay_seconds=300)  # newest; then five queued ones behind it
    first = client.get("/api/jobs?status=finished").get_json()
    assert first["jobs"] == [] and first["next_cursor"]  # gave up after 3 entries, says where to go on
    second = client.get(f"/api/jobs?status=finished&cursor={first['next_cursor']}").get_json()
    assert second["jobs"] == [] and second["next_cursor"]
    third = client.get(f"/api/jobs?status=finished&cursor={second['next_cursor']}").get_json()
    assert third == {"jobs": [], "next_cursor": None}


def test_list_forgets_expired_jobs(client, redis):
    gone = submit(client).get_json()["id"]
    kept = submit(client).get_json()["id"]
    redis.delete(f"rq:job:{gone}")
    assert [job["id"] for job in client.get("/api/jobs").get_json()["jobs"]] == [kept]
    assert redis.zscore("stack:jobs:recent", gone) is None


@pytest.mark.parametrize(
    "query",
    ["status=done", "limit=0", "limit=101", "limit=ten", "cursor=garbage", "cursor=nan:x", "cursor=1.5:"],
)
def test_bad_list_queries_get_422(client, query):
    assert_error(client.get(f"/api/jobs?{query}"), 422, "invalid_request")


@pytest.mark.parametrize("wait", ["-1", "31", "soon", "nan", "inf"])
def test_bad_wait_gets_422(client, wait):
    job_id = submit(client).get_json()["id"]
    assert_error(client.get(f"/api/jobs/{job_id}?wait={wait}"), 422, "invalid_request")


def test_wait_returns_the_current_state_after_the_deadline(client):
    job_id = submit(client).get_json()["id"]
    started = datetime.now(UTC)
    body = client.get(f"/api/jobs/{job_id}?wait=1").get_json()
    assert body["status"] == "queued"
    assert (datetime.now(UTC) - started).total_seconds() >= 0.9


def test_wait_on_unknown_job_is_404_at_once(client):
    assert_error(client.get("/api/jobs/nope?wait=30"), 404, "not_found")


def test_cancel_queued_job(client, redis):
    job_id = submit(client).get_json()["id"]
    response = client.post(f"/api/jobs/{job_id}/cancel", json={})
    assert response.status_code == 200
    assert response.get_json()["status"] == "canceled"
    assert redis.llen("rq:queue:default") == 0
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "canceled"


def test_cancel_scheduled_job(client, redis):
    job_id = submit(client, delay_seconds=60).get_json()["id"]
    assert client.post(f"/api/jobs/{job_id}/cancel", json={}).get_json()["status"] == "canceled"
    assert redis.zcard("rq:scheduled:default") == 0


def test_cancel_twice_is_409(client):
    job_id = submit(client).get_json()["id"]
    client.post(f"/api/jobs/{job_id}/cancel", json={})
    error = assert_error(client.post(f"/api/jobs/{job_id}/cancel", json={}), 409, "not_cancelable")
    assert "canceled" in error["message"]


def test_cancel_unknown_job_is_404(client):
    assert_error(client.post("/api/jobs/nope/cancel", json={}), 404, "not_found")


def test_cancel_needs_post(client):
    job_id = submit(client).get_json()["id"]
    assert_error(client.get(f"/api/jobs/{job_id}/cancel"), 405, "method_not_allowed")


def test_aggregate_job_cannot_be_submitted_by_name(client):
    body = {"type": "aggregate_word_counts", "params": {"batch_id": "x", "item_ids": ["y"]}}
    assert_error(client.post("/api/jobs", json=body), 422, "unknown_job_type")


def test_cursor_is_stable_when_jobs_share_a_timestamp(client, redis):
    ids = [submit(client).get_json()["id"] for _ in range(3)]
    redis.zadd("stack:jobs:recent", {job_id: 1_700_000_000.5 for job_id in ids})  # same score for all
    seen, cursor = [], ""
    for _ in range(4):
        page = client.get(f"/api/jobs?limit=1&cursor={cursor}").get_json()
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)  # each once, in a fixed order


def test_new_jobs_do_not_shift_later_pages(client):
    old = [submit(client).get_json()["id"] for _ in range(3)]
    page = client.get("/api/jobs?limit=2").get_json()
    submit(client)  # arrives while the client pages
    rest = client.get(f"/api/jobs?limit=2&cursor={page['next_cursor']}").get_json()
    assert [job["id"] for job in rest["jobs"]] == [old[0]]


def test_delayed_job_is_never_due_before_its_time(client, redis):
    # RQ keeps due times in whole seconds; truncating would let a job run up to a second early.
    for _ in range(5):
        before = datetime.now(UTC).timestamp()
        job = submit(client, delay_seconds=1.5).get_json()
        assert redis.zscore("rq:scheduled:default", job["id"]) >= before + 1.5
