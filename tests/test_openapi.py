"""The OpenAPI document matches the app, and schemathesis finds no 5xx and no response off the schema."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from engine import catalog
from engine.settings import Settings
from tests.conftest import BEARER
from web import create_app
from web.openapi import document

# Per operation: bounded so the suite stays fast (about 5 s for all operations). Long-polls cannot slow it: a
# generated job_id never names a real job (ids are UUIDs), and GET /api/jobs/{job_id}?wait=N answers an unknown id at
# once with a 404; the schema also bounds wait to 0-30 s, so no case could wait longer than the app allows anyway.
MAX_EXAMPLES = 150
CHECKS = [
    checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
    checks.response_schema_conformance, checks.response_headers_conformance,
]


def documented_operations(doc: dict) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}


def app_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and rule.endpoint != "openapi.openapi_json":
            path = rule.rule.replace("<", "{").replace(">", "}")
            found |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def test_document_lists_exactly_the_apps_api_routes(app):
    assert documented_operations(document()) == app_operations(app)


def test_document_is_served_and_has_every_job_type(client):
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    variants = doc["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert {v["properties"]["type"]["const"] for v in variants} == set(catalog.CATALOG)


def test_document_declares_the_bearer_scheme_when_a_token_is_set(env, redis):
    app = create_app({"SETTINGS": Settings.from_env({**env, "API_TOKEN": "s3cret-token-0123456789"})})
    doc = app.test_client().get("/api/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


@pytest.mark.parametrize("credentials", [{}, BEARER], ids=["visitor", "token"])
def test_schemathesis_finds_no_5xx_and_no_response_off_the_schema(env, redis, credentials):
    # A generous limit: the fuzzer must meet the API's answers, not the rate limiter's.
    app = create_app({"SETTINGS": Settings.from_env({**env, "RATELIMIT_SUBMIT": "100000 per minute"})})
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    seen: Counter[str] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            response = case.call(headers=credentials)
            seen["cases"] += 1
            seen["5xx"] += response.status_code >= 500
            seen[str(response.status_code)] += 1
            case.validate_response(response, checks=CHECKS)

        check()
    print(f"\nschemathesis: {seen['cases']} cases, {seen['5xx']} responses 5xx; by status: {dict(seen)}")
    assert seen["cases"] >= MAX_EXAMPLES  # it really ran
    assert seen["5xx"] == 0
    if credentials:  # past the token check: the protected routes answered, not only their 401
        assert seen["401"] == 0 and seen["200"] > 0, dict(seen)
    app.extensions["redis"].close()


def answer(schema, path: str, method: str, status: int, **data):
    """Call one operation with explicit data; assert the status and that the answer matches the document."""
    case = schema[path][method].Case(**data)
    response = case.call()
    assert response.status_code == status, response.text
    case.validate_response(response, checks=CHECKS)
    return response.json()


def test_answers_the_fuzzer_cannot_reach_match_the_document(env, redis):
    """Replays, conflicts, real jobs and batches: generated data never names an existing job or batch."""
    app = create_app({"SETTINGS": Settings.from_env(env)})
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    body = {"type": "count_words_at_url", "params": {"url": "https://example.com/"}, "delay_seconds": 600}
    key = {"Idempotency-Key": "order-1"}
    job = answer(schema, "/api/jobs", "POST", 202, body=body, headers=key)
    assert answer(schema, "/api/jobs", "POST", 200, body=body, headers=key)["id"] == job["id"]
    answer(schema, "/api/jobs", "POST", 409, body={**body, "priority": "high"}, headers=key)
    answer(schema, "/api/jobs", "POST", 400, body=body, headers={"Idempotency-Key": "caf\u00e9"})
    answer(schema, "/api/jobs", "POST", 413, body={**body, "params": {"url": "x" * app.config["MAX_CONTENT_LENGTH"]}})
    answer(schema, "/api/jobs", "GET", 401, query={"status": "scheduled", "limit": 1})  # everyone's jobs: token
    page = answer(schema, "/api/jobs", "GET", 200, query={"status": "scheduled", "limit": 1}, headers=BEARER)
    assert [j["id"] for j in page["jobs"]] == [job["id"]] and page["next_cursor"]
    ids = {"job_id": job["id"]}
    waited = answer(schema, "/api/jobs/{job_id}", "GET", 200, path_parameters=ids, query={"wait": 0.2})
    assert waited["status"] == "scheduled"
    canceled = answer(schema, "/api/jobs/{job_id}/cancel", "POST", 200, path_parameters=ids, body={})
    assert canceled["status"] == "canceled"
    answer(schema, "/api/jobs/{job_id}/cancel", "POST", 409, path_parameters=ids, body={})
    urls = ["https://example.com/", "https://example.org/"]
    items = [{"url": url} for url in urls]
    batch = answer(schema, "/api/batches", "POST", 202, body={"type": "count_words_at_url", "items": items})
    again = answer(schema, "/api/batches/{batch_id}", "GET", 200, path_parameters={"batch_id": batch["id"]})
    assert again["items"] == batch["items"]
    app.extensions["redis"].close()


@pytest.mark.parametrize("job_id", [", ", "a b", "x.y", "%00", "é"])
def test_job_ids_rq_would_refuse_are_404_not_500(client, job_id):
    response = client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
