"""Batches: validation (real Redis), created whole or not at all, and the aggregate through real workers, with
failed, canceled and stopped items."""

import dataclasses
import time
from contextlib import contextmanager

import pytest
import schemathesis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job
from rq.registry import DeferredJobRegistry

from engine import batches, catalog
from engine.enqueue_script import NotReplicated
from engine.queues import SERIALIZER
from jobs.wordcount.aggregate import summarise
from tests.slowserver import serving
from tests.test_api import assert_error
from tests.test_openapi import answer

BINARY = {"Content-Type": "application/octet-stream"}
TERMINAL_BATCH = {"finished", "failed", "canceled", "stopped", "expired"}


@pytest.fixture
def slow_server():
    with serving() as server:
        yield server


def wait_for_batch(client, batch_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/batches/{batch_id}").get_json()
        if body["status"] in TERMINAL_BATCH or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def post_batch(client, urls, **extra):
    items = [{"url": url} for url in urls]
    return client.post("/api/batches", json={"type": "count_words_at_url", "items": items, **extra})


def test_batch_is_accepted_with_its_items(client, redis):
    response = post_batch(client, ["https://example.com/", "https://example.org/"], priority="high")
    assert response.status_code == 202
    batch = response.get_json()
    assert response.headers["Location"] == f"/api/batches/{batch['id']}"
    assert batch["status"] == "queued"
    assert [item["status"] for item in batch["items"]] == ["queued", "queued"]
    assert batch["result"] is None
    assert redis.llen("rq:queue:high") == 2  # the aggregate waits, deferred, until the items end
    assert client.get(f"/api/jobs/{batch['aggregate_id']}").get_json()["status"] == "deferred"


def test_a_batch_reads_back_through_rq_as_rq_records_it(client, redis):
    batch = post_batch(client, ["https://example.com/", "https://example.org/"]).get_json()
    item_ids = [item["id"] for item in batch["items"]]
    assert Queue("default", connection=redis).job_ids == item_ids
    assert DeferredJobRegistry("default", connection=redis).get_job_ids() == [batch["aggregate_id"]]
    aggregate = Job.fetch(batch["aggregate_id"], connection=redis, serializer=SERIALIZER)
    assert (aggregate.get_status(), sorted(aggregate.dependency_ids)) == ("deferred", sorted(item_ids))
    assert aggregate.allow_dependency_failures and aggregate.kwargs["item_ids"] == item_ids
    for item_id in item_ids:
        item = Job.fetch(item_id, connection=redis, serializer=SERIALIZER)
        assert (item.get_status(), item.meta["batch"]) == ("queued", batch["id"])
        assert redis.sismember(item.dependents_key, aggregate.id)  # RQ enqueues the aggregate from here


@contextmanager
def out_of_memory(redis):
    """Redis at its memory limit, refusing writes (noeviction), for the length of the block."""
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", 1)
    try:
        yield
    finally:
        redis.config_set("maxmemory", 0)


@contextmanager
def a_key_of_the_wrong_type(redis):
    """The deferred registry, written last (for the aggregate), holding a string: a script error midway."""
    redis.set("rq:deferred:default", "not a sorted set")
    yield
    redis.delete("rq:deferred:default")


@pytest.mark.parametrize("failure", [out_of_memory, a_key_of_the_wrong_type])
def test_a_redis_failure_leaves_no_part_of_a_batch(redis, settings, failure):
    job_type = catalog.get("count_words_at_url")
    items = [job_type.validate({"url": f"https://example.com/{i}"}) for i in range(5)]
    before = set(redis.keys("*"))
    with failure(redis), pytest.raises(RedisError):
        batches.create_batch(redis, "default", job_type, items, settings)
    assert set(redis.keys("*")) == before  # no job, queue entry, registry entry, index entry or batch record
    batches.create_batch(redis, "default", job_type, items, settings)  # and with Redis well again, it all works
    assert redis.llen("rq:queue:default") == 5 and len(redis.keys("stack:batch:*")) == 1


def test_a_batch_no_replica_confirms_is_withdrawn_whole(redis, settings):
    job_type = catalog.get("count_words_at_url")
    items = [job_type.validate({"url": f"https://example.com/{i}"}) for i in range(3)]
    # This Redis has no replica: asking for one makes the batch's write time out unconfirmed, and be withdrawn.
    unconfirmed = dataclasses.replace(settings, redis_wait_replicas=1, redis_wait_timeout_ms=10)
    with pytest.raises(NotReplicated):
        batches.create_batch(redis, "default", job_type, items, unconfirmed)
    assert not redis.keys("rq:job:*") and not redis.keys("stack:batch:*") and not redis.zcard("stack:jobs:recent")
    assert not redis.llen("rq:queue:default") and not redis.zcard("rq:deferred:default")


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        ({"type": "count_words_at_url", "items": []}, "invalid_request", "items"),
        ({"type": "count_words_at_url", "items": [{"url": "https://x.org/"}] * 101}, "invalid_request", "items"),
        ({"type": "count_words_at_url", "items": {"url": "https://x.org/"}}, "invalid_request", "items"),
        ({"type": "count_words_at_url"}, "invalid_request", "items"),
        ({"type": "count_words_at_url", "items": [{"url": "https://x.org/"}, {"url": "ftp://x"}]}, "invalid_request",
         "items[1].url"),
        ({"type": "count_words_at_url", "items": ["https://x.org/"]}, "invalid_request", "items[0]"),
        ({"type": "nope", "items": [{"url": "https://x.org/"}]}, "unknown_job_type", "nope"),
        ({"type": "aggregate_word_counts", "items": [{"url": "https://x.org/"}]}, "unknown_job_type", "aggregate"),
        ({"type": "count_words_at_url", "items": [{"url": "https://x.org/"}], "extra": 1}, "invalid_request",
         "extra"),
        ({"type": "count_words_at_url", "items": [{"url": "https://x.org/"}], "priority": "now"}, "invalid_request",
         "priority"),
    ],
)
def test_bad_batches_get_422(client, redis, body, code, needle):
    error = assert_error(client.post("/api/batches", json=body), 422, code)
    assert needle in error["message"]
    assert redis.keys("rq:job:*") == []


def test_unknown_batch_is_404(client):
    error = assert_error(client.get("/api/batches/0123abcd"), 404, "not_found")
    assert "expired or never existed" in error["message"]
    assert_error(client.get("/api/batches/not-hex!"), 404, "not_found")


def test_summarise_sums_counts_and_merges_top_words():
    results = [
        {"total_words": 5, "top_words": [{"word": "a", "count": 3}, {"word": "b", "count": 2}]},
        {"total_words": 4, "top_words": [{"word": "b", "count": 3}, {"word": "c", "count": 1}]},
    ]
    failed = [{"id": "x", "url": "u", "status": "failed", "error": {"type": "E", "message": "m"}}]
    summary = summarise("batch", results, failed)
    assert summary["total_words"] == 9
    assert summary["top_words"] == [{"word": "b", "count": 5}, {"word": "a", "count": 3}, {"word": "c", "count": 1}]
    assert summary["finished"] == 2 and summary["failed"] == 1 and summary["failed_items"] == failed


@pytest.mark.integration
def test_batch_aggregates_finished_items_and_lists_failed_ones(client, worker, page_server):
    page_server.add("/binary", body=b"\x00\x01", headers=BINARY)
    urls = [page_server.url("/"), page_server.url("/"), page_server.url("/binary")]
    batch = post_batch(client, urls).get_json()
    done = wait_for_batch(client, batch["id"])
    assert done["status"] == "finished", worker.log()
    assert done["counts"] == {"finished": 2, "failed": 1}
    result = done["result"]
    assert result["total_words"] == 18  # 9 words on the sample page, twice
    assert result["top_words"][:2] == [{"word": "the", "count": 6}, {"word": "cat", "count": 4}]
    assert result["finished"] == 2 and result["failed"] == 1
    [failed] = result["failed_items"]
    assert failed["url"] == page_server.url("/binary")
    assert failed["id"] == done["items"][2]["id"]
    assert failed["error"]["type"] == "UnsupportedContentType"
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", client.application)  # the result is as documented
    assert answer(schema, "/api/batches/{batch_id}", "GET", 200, path_parameters={"batch_id": batch["id"]}) == done


@pytest.mark.integration
def test_canceled_item_does_not_hold_the_batch_back(client, start_worker, page_server):
    batch = post_batch(client, [page_server.url("/")] * 3).get_json()
    canceled = batch["items"][1]["id"]
    assert client.post(f"/api/jobs/{canceled}/cancel", json={}).get_json()["status"] == "canceled"
    worker = start_worker()
    done = wait_for_batch(client, batch["id"])
    assert done["status"] == "finished", worker.log()
    assert done["result"]["finished"] == 2
    assert [(i["id"], i["status"]) for i in done["result"]["failed_items"]] == [(canceled, "canceled")]


@pytest.mark.integration
def test_stopped_last_item_still_lets_the_aggregate_run(client, worker, page_server, slow_server):
    batch = post_batch(client, [page_server.url("/"), slow_server.url(30)]).get_json()
    slow = batch["items"][1]["id"]
    deadline = time.monotonic() + 30
    while client.get(f"/api/jobs/{slow}").get_json()["status"] != "started" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.post(f"/api/jobs/{slow}/cancel", json={}).status_code == 200, worker.log()
    done = wait_for_batch(client, batch["id"])
    assert done["status"] == "finished", worker.log()
    assert done["result"]["finished"] == 1
    assert [(i["id"], i["status"]) for i in done["result"]["failed_items"]] == [(slow, "stopped")]


@pytest.mark.integration
def test_canceling_the_aggregate_cancels_the_batch(client, worker, slow_server):
    batch = post_batch(client, [slow_server.url(30)]).get_json()
    assert client.post(f"/api/jobs/{batch['aggregate_id']}/cancel", json={}).get_json()["status"] == "canceled"
    assert client.get(f"/api/batches/{batch['id']}").get_json()["status"] == "canceled"
