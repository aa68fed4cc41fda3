"""The daily quota: one client's work per UTC day is bounded, so no client can fill Redis; past it a 429 says so."""

from __future__ import annotations

import time

import pytest

from engine.settings import Settings
from tests.conftest import BEARER
from web import create_app
from web.ratelimit import ClientLimiter, Rate

JOB = {"type": "count_words_at_url", "params": {"url": "https://example.com/"}}
SOMEONE, SOMEONE_ELSE = {"REMOTE_ADDR": "203.0.113.7"}, {"REMOTE_ADDR": "198.51.100.9"}


def make_client(env, quota: int):
    settings = Settings.from_env({**env, "DAILY_QUOTA": str(quota), "RATELIMIT_SUBMIT": "1000 per minute"})
    return create_app({"SETTINGS": settings, "TESTING": True}).test_client()


def queued(redis) -> int:
    return redis.llen("rq:queue:default")


def test_past_the_daily_quota_a_client_gets_429_saying_so_and_nothing_is_kept(env, redis):
    client = make_client(env, quota=3)
    assert [client.post("/api/jobs", json=JOB, environ_base=SOMEONE).status_code for _ in range(3)] == [202] * 3
    refused = client.post("/api/jobs", json=JOB, environ_base=SOMEONE)
    assert refused.status_code == 429
    message = refused.get_json()["error"]["message"]
    assert message.startswith("Daily quota reached: one client may submit 3 jobs a day") and "00:00 UTC" in message
    assert 0 < int(refused.headers["Retry-After"]) <= 86400
    assert queued(redis) == 3
    # Other clients have their own quota: another address, and the API token's holder.
    assert client.post("/api/jobs", json=JOB, environ_base=SOMEONE_ELSE).status_code == 202
    assert client.post("/api/jobs", json=JOB, environ_base=SOMEONE, headers=BEARER).status_code == 202
    assert queued(redis) == 5


def test_a_batch_counts_its_items_and_a_refused_one_leaves_the_rest_of_the_quota(env, redis):
    client = make_client(env, quota=5)
    batch = {"type": "count_words_at_url", "items": [{"url": f"https://example.com/{n}"} for n in range(4)]}
    assert client.post("/api/batches", json=batch, environ_base=SOMEONE).status_code == 202
    refused = client.post("/api/batches", json=batch, environ_base=SOMEONE)
    assert refused.status_code == 429 and "Daily quota reached" in refused.get_json()["error"]["message"]
    assert client.post("/api/jobs", json=JOB, environ_base=SOMEONE).status_code == 202  # the 5th still fits
    assert client.post("/api/jobs", json=JOB, environ_base=SOMEONE).status_code == 429
    assert queued(redis) == 5


def test_idempotent_submits_and_form_posts_count_too(env, redis):
    client = make_client(env, quota=1)
    headers = {"Idempotency-Key": "k-1"}
    assert client.post("/api/jobs", json=JOB, environ_base=SOMEONE, headers=headers).status_code == 202
    refused = client.post("/api/jobs", json=JOB, environ_base=SOMEONE, headers={"Idempotency-Key": "k-2"})
    assert refused.status_code == 429 and "Daily quota reached" in refused.get_json()["error"]["message"]


def test_jobs_carry_their_client_and_anonymous_ones_are_kept_a_day(env, redis):
    client = make_client(env, quota=10)
    anonymous = client.post("/api/jobs", json=JOB, environ_base=SOMEONE).get_json()["id"]
    with_token = client.post("/api/jobs", json=JOB, environ_base=SOMEONE, headers=BEARER).get_json()["id"]
    assert redis.hget(f"rq:job:{anonymous}", "client") == b"address:203.0.113.7"
    token_client = redis.hget(f"rq:job:{with_token}", "client").decode()
    assert token_client.startswith("token:") and BEARER["Authorization"].split()[1] not in token_client
    # What RQ keeps them for once they end (its own fields): a day for anonymous jobs, RESULT_TTL (7 days) else.
    assert redis.hmget(f"rq:job:{anonymous}", "result_ttl", "failure_ttl") == [b"86400", b"86400"]
    assert redis.hmget(f"rq:job:{with_token}", "result_ttl", "failure_ttl") == [b"604800", b"604800"]



def test_scheduled_and_batch_jobs_carry_their_client_too(env, redis):
    """RQ's own path (a scheduled job, a batch's aggregate) records the client and the anonymous TTLs as well."""
    client = make_client(env, quota=10)
    scheduled = client.post("/api/jobs", json={**JOB, "delay_seconds": 60}, environ_base=SOMEONE).get_json()["id"]
    batch = client.post("/api/batches", json={"type": "count_words_at_url", "items": [JOB["params"]]},
                        environ_base=SOMEONE).get_json()
    for job_id in (scheduled, *(item["id"] for item in batch["items"]), batch["aggregate_id"]):
        assert redis.hget(f"rq:job:{job_id}", "client") == b"address:203.0.113.7"
        assert redis.hmget(f"rq:job:{job_id}", "result_ttl", "failure_ttl") == [b"86400", b"86400"]

def test_the_embedded_redis_is_bounded_and_never_evicts_jobs(redis):
    assert redis.config_get("maxmemory") == {"maxmemory": str(256 * 2**20)}
    assert redis.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}


@pytest.mark.parametrize(("used", "left"), [(3, b"1"), (2, b"0"), (1, b"1"), (None, None)],
                         ids=["taken-back", "to-zero", "never-below-zero", "never-a-new-key"])
def test_a_quota_charge_is_given_back_without_going_below_zero_or_making_a_key(redis, used, left):
    limiter = ClientLimiter(redis, Rate.parse("10 per minute"), quota=100)
    now = time.time()
    key = limiter.plan("address:192.0.2.1", 2, now, "address:192.0.2.1").quota_key
    if used is not None:
        redis.set(key, used)
    limiter.give_back("address:192.0.2.1", 2, now, "address:192.0.2.1")
    assert redis.get(key) == left
