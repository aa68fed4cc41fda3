"""Heroku-style deploy: app.json, the Python pin, and the real Procfile under honcho driving one job."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.embedded_redis import free_port
from engine.health import live_workers
from engine.settings import PROJECT_ROOT
from tests.faults import wait_until
from tests.processes import ProcessGroup, http, venv_env, wait_http_ok, wait_job

TOKEN = "procfile-metrics-token-0123"


def test_app_json_declares_redis_formation_and_env():
    app = json.loads((PROJECT_ROOT / "app.json").read_text())
    assert [addon["plan"].split(":")[0] for addon in app["addons"]] == ["heroku-redis"]
    assert {name: spec["quantity"] for name, spec in app["formation"].items()} == {"web": 1, "worker": 1}
    procfile = dict(line.split(":", 1) for line in (PROJECT_ROOT / "Procfile").read_text().splitlines() if line)
    assert set(app["formation"]) <= set(procfile)
    documented = set(re.findall(r"^([A-Z_]+)=", (PROJECT_ROOT / ".env.example").read_text(), re.MULTILINE))
    assert set(app["env"]) <= documented, set(app["env"]) - documented
    for secret in ("SECRET_KEY", "DASHBOARD_PASSWORD", "METRICS_TOKEN"):
        assert app["env"][secret]["generator"] == "secret"
    assert app["env"]["REDIS_TLS_VERIFY"]["value"] == "false"  # Heroku Redis: self-signed certificate


def test_python_version_is_pinned_for_the_platform():
    assert (PROJECT_ROOT / ".python-version").read_text().strip() == "3.11"


def value_of(metrics_text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


@pytest.mark.integration
def test_procfile_under_honcho_runs_a_job(redis_server, redis, page_server, tmp_path):
    port = free_port()
    env = venv_env(
        PORT=str(port), REDIS_URL=redis_server.url, APP_ENV="production", SECRET_KEY="procfile-secret-key-0123",
        WEB_CONCURRENCY="2", METRICS_TOKEN=TOKEN, LOG_FORMAT="json", FETCH_ALLOW_NETWORKS="127.0.0.0/8",
        DASHBOARD_PASSWORD="",
    )
    stack = ProcessGroup(["honcho", "start", "-f", "Procfile", "-p", str(port)], env, tmp_path / "honcho.log")
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_http_ok(f"{base}/readyz", stack), stack.log()
        # Both worker processes register before the job is sent: a freshly cloned tree compiles its bytecode on
        # the first import, so one process can be seconds behind the other.
        assert wait_until(lambda: len(live_workers(redis)) == 2, 60), stack.log()  # WORKER_PROCESSES, as shipped
        status, headers, body = http("POST", f"{base}/api/jobs", {"type": "count_words_at_url",
                                     "params": {"url": page_server.url("/"), "top": 2}}, {"X-Request-ID": "deploy-1"})
        assert status == 202, body
        assert headers["X-Request-ID"] == "deploy-1"
        job = wait_job(base, json.loads(body)["id"])
        assert job["status"] == "finished", (job, stack.log())
        assert job["result"]["top_words"][0] == {"word": "the", "count": 3}
        # Two gunicorn processes answer scrapes in turn; the numbers come from Redis, so they agree.
        for _ in range(6):
            status, _, text = http("GET", f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert status == 200
            assert value_of(text.decode(), "rq_jobs_submitted_total", {"type": "count_words_at_url"}) == 1
            assert value_of(text.decode(), "rq_workers_live", {}) == 2  # WORKER_PROCESSES, as shipped
    finally:
        stack.stop()
    lines = [json.loads(line.split("| ", 1)[1]) for line in stack.log().splitlines()
             if "| {" in line]  # honcho prefixes each line with "HH:MM:SS name.1 | "
    events = {(line.get("event"), line.get("request_id")) for line in lines}
    assert {("enqueued", "deploy-1"), ("started", "deploy-1"), ("finished", "deploy-1")} <= events, stack.log()
    access = [line for line in lines if line.get("logger") == "gunicorn.access" and line.get("path") == "/api/jobs"]
    assert access and access[0]["request_id"] == "deploy-1" and access[0]["status"] == 202
