"""The public HTTP contract of the JSON API (real Redis, no worker needed)."""

import contextlib
import json
import zlib

import pytest
from redis import Redis
from redis.exceptions import ResponseError

from engine.settings import Settings
from web import create_app

JOB_KEYS = {
    "id", "type", "params", "status", "created_at", "enqueued_at", "started_at", "ended_at", "progress", "result",
    "error", "attempt", "waiting",
}
VALID = {"type": "count_words_at_url", "params": {"url": "https://example.com/", "top": 5}}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.is_json
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"] and "Traceback" not in error["message"]
    return error


def test_submit_answers_202_with_location_and_job(client):
    response = client.post("/api/jobs", json=VALID)
    assert response.status_code == 202
    job = response.get_json()
    assert set(job) == JOB_KEYS
    assert response.headers["Location"] == f"/api/jobs/{job['id']}"
    assert job["type"] == "count_words_at_url"
    assert job["params"] == {"url": "https://example.com/", "top": 5}
    assert job["status"] == "queued"
    assert job["created_at"].endswith("Z") and job["enqueued_at"].endswith("Z")
    assert job["result"] is None and job["error"] is None and job["attempt"] == 1


def test_submitted_job_reads_back_as_the_submit_answered(client):
    answered = client.post("/api/jobs", json=VALID).get_json()
    response = client.get(f"/api/jobs/{answered['id']}")
    assert response.status_code == 200
    assert response.get_json() == answered  # the answer is built without reading the job back: it must agree


def test_job_is_stored_as_json_not_pickle(client, redis):
    job_id = client.post("/api/jobs", json=VALID).get_json()["id"]
    data = zlib.decompress(redis.hget(f"rq:job:{job_id}", "data"))  # RQ compresses the payload
    func_name, instance, args, kwargs = json.loads(data)
    assert (func_name, instance, args) == ("jobs.wordcount.count_words_at_url", None, [])
    assert kwargs == {"url": "https://example.com/", "top": 5}


def test_unknown_job_id_is_404(client):
    error = assert_error(client.get("/api/jobs/does-not-exist"), 404, "not_found")
    assert "expired or never existed" in error["message"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "bad_request"),
        ({"data": "type=count_words_at_url", "content_type": "application/x-www-form-urlencoded"}, 415,
         "unsupported_media_type"),
        ({"data": "", "content_type": "application/json"}, 400, "bad_request"),
        ({"json": [1, 2]}, 400, "bad_request"),
        ({"json": "count_words_at_url"}, 400, "bad_request"),
        ({"json": {"type": "nope", "params": {}}}, 422, "unknown_job_type"),
        ({"json": {"params": {"url": "https://example.com/"}}}, 422, "unknown_job_type"),
        ({"json": {"type": "count_words_at_url", "params": {}}}, 422, "invalid_params"),
        ({"json": {"type": "count_words_at_url", "params": {"url": "ftp://x.org/"}}}, 422, "invalid_params"),
        ({"json": {"type": "count_words_at_url", "params": {"url": "http://"}}}, 422, "invalid_params"),
        ({"json": {"type": "count_words_at_url", "params": {"url": "https://x.org/" + "a" * 2100}}}, 422,
         "invalid_params"),
        ({"json": {"type": "count_words_at_url", "params": {"url": "https://x.org/", "top": -1}}}, 422,
         "invalid_params"),
        ({"json": {"type": "count_words_at_url", "params": "https://x.org/"}}, 422, "invalid_params"),
        ({"json": {**VALID, "surprise": True}}, 422, "invalid_request"),
    ],
)
def test_bad_submissions_get_json_4xx(client, kwargs, status, code):
    assert_error(client.post("/api/jobs", **kwargs), status, code)


def test_invalid_params_message_names_the_field(client):
    error = assert_error(
        client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": "gopher://x"}}),
        422, "invalid_params",
    )
    assert "params.url" in error["message"]


def test_oversized_body_is_413(client):
    body = '{"type": "count_words_at_url", "params": {"url": "https://x.org/?' + "a" * 600_000 + '"}}'
    assert_error(client.post("/api/jobs", data=body, content_type="application/json"), 413, "request_entity_too_large")


def test_wrong_method_is_405_json(client):
    error = assert_error(client.delete("/api/jobs"), 405, "method_not_allowed")
    assert error["message"]


def test_unknown_api_path_is_404_json(client):
    assert_error(client.get("/api/nothing-here"), 404, "not_found")


def test_redis_down_is_503_json(tmp_path):
    settings = Settings.from_env({"REDIS_URL": f"unix://{tmp_path}/nobody.sock", "APP_ENV": "testing"})
    client = create_app({"SETTINGS": settings}).test_client()
    assert_error(client.post("/api/jobs", json=VALID), 503, "redis_unavailable")
    assert_error(client.get("/api/jobs/some-id"), 503, "redis_unavailable")
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_health(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_deeply_nested_json_is_400_not_500(client):
    body = "[" * 100_000 + "]" * 100_000  # under the size limit, beyond the JSON parser's recursion
    assert_error(client.post("/api/jobs", data=body, content_type="application/json"), 400, "bad_request")


def test_redis_out_of_memory_is_503(tmp_path, env):
    from engine.embedded_redis import RedisServer

    with RedisServer(tmp_path / "full", extra=("maxmemory 2mb",)) as server:
        filler = Redis.from_url(server.url)
        for size in (100_000, 10_000, 1_000, 100):  # fill the gaps too, so no small write fits any more
            with contextlib.suppress(ResponseError):  # noeviction: writes fail once memory is full
                for n in range(1000):
                    filler.set(f"filler:{size}:{n}", "x" * size)
        # A gap of a few bytes may remain, and one script call may start in it and write past the limit, as a
        # single command may: lower the limit below the data so every write is refused.
        filler.config_set("maxmemory", "1mb")
        filler.close()
        settings = Settings.from_env({**env, "REDIS_URL": server.url, "DASHBOARD_PASSWORD": ""})
        client = create_app({"SETTINGS": settings}).test_client()
        error = assert_error(client.post("/api/jobs", json=VALID), 503, "redis_unavailable")
        assert "Traceback" not in error["message"]
