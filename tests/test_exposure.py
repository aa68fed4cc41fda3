"""Exposed to the internet, against real processes (gunicorn from the Procfile with web/gunicorn_conf.py, a worker):
forwarded headers trusted only when configured, HSTS only over https, gunicorn's own refusals as JSON, access
per job type, one rate limit per client, and IPv6 forms of loopback refused before connecting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from engine.embedded_redis import free_port
from engine.settings import PROJECT_ROOT
from tests.conftest import TEST_API_TOKEN, WorkerProcess, wait_for_job
from tests.pageserver import ConnectionRecorder
from tests.processes import http
from tests.test_longpoll import procfile_command

pytestmark = pytest.mark.integration


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
            body: object = None) -> tuple[int, dict[str, str], bytes]:
    """tests.processes.http on the local server, with header names in lower case."""
    status, got, data = http(method, f"http://127.0.0.1:{port}{path}", body, headers)
    return status, {name.lower(): value for name, value in got.items()}, data


@pytest.fixture
def serve(env, redis, tmp_path) -> Iterator[Callable[..., int]]:
    """Factory: start the Procfile's web command with extra environment; its port. All are stopped after."""
    started: list[tuple[subprocess.Popen, object]] = []

    def start(**extra: str) -> int:
        port = free_port()
        log = open(tmp_path / f"gunicorn{len(started)}.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [sys.executable, "-m", *procfile_command("web"), "--bind", f"127.0.0.1:{port}"],
            cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **env, "APP_ENV": "production", "WEB_CONCURRENCY": "1", "PORT": str(port), **extra},
        )
        started.append((process, log))
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    return port
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.name
            time.sleep(0.2)

    yield start
    for process, log in started:
        process.terminate()
        process.wait(30)
        log.close()


SPOOFED_TLS = [{"X-Forwarded-Proto": "https"}, {"X-Forwarded-Ssl": "on"}, {"X-Forwarded-Protocol": "ssl"}]


def test_no_forwarded_header_is_trusted_by_default(serve):
    port = serve()
    for headers in SPOOFED_TLS:
        status, got, _ = request(port, "GET", "/healthz", headers)
        assert status == 200
        assert "strict-transport-security" not in got, headers  # plain HTTP, whatever the client claims


def test_a_configured_proxy_is_trusted_for_the_scheme_it_sets(serve):
    port = serve(PROXY_FIX_X_PROTO="1")
    assert "strict-transport-security" in request(port, "GET", "/healthz", {"X-Forwarded-Proto": "https"})[1]
    # ProxyFix reads X-Forwarded-Proto only; gunicorn trusts none of the others from anyone.
    for headers in SPOOFED_TLS[1:]:
        assert "strict-transport-security" not in request(port, "GET", "/healthz", headers)[1], headers


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/api/jobs/" + "a" * 9000, {}, 414, "uri_too_long"),
        ("/api/jobs/x", {"X-Big": "b" * 9000}, 431, "request_header_fields_too_large"),
        ("/api/jobs/x", {f"X-H{i}": "1" for i in range(120)}, 431, "request_header_fields_too_large"),
    ],
)
def test_gunicorn_refusals_are_json(serve, path, headers, status, code):
    port = serve()
    got_status, got, body = request(port, "GET", path, headers)
    assert got_status == status
    assert got["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == code
    assert json.loads(body)["error"]["message"]


# --- against the real web process: access, the rate limit, the SSRF refusal ---------------------------------

VALID = {"type": "count_words_at_url", "params": {"url": "https://example.com/"}}
PROTECTED = {"type": "send_email", "params": {"to": "ada@example.com", "subject": "Hi", "body": "b"}}


def test_a_visitor_gets_public_jobs_and_clear_refusals(serve):
    port = serve()
    status, _, body = request(port, "POST", "/api/jobs", body=VALID)
    assert status == 202
    job_id = json.loads(body)["id"]
    assert request(port, "GET", f"/api/jobs/{job_id}")[0] == 200  # by its id
    for method, path, payload in (("POST", "/api/jobs", PROTECTED), ("GET", "/api/jobs", None)):
        status, headers, body = request(port, method, path, body=payload)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        error = json.loads(body)["error"]
        assert error["code"] == "unauthorized" and "Authorization: Bearer <API_TOKEN>" in error["message"]
    status, _, body = request(port, "POST", "/api/jobs", {"Authorization": f"Bearer {TEST_API_TOKEN}"}, PROTECTED)
    assert status == 202


def test_one_limit_per_client_across_routes_in_the_real_server(serve):
    port = serve(RATELIMIT_SUBMIT="4 per minute")
    job_id = json.loads(request(port, "POST", "/api/jobs", body=VALID)[2])["id"]
    items = [{"url": "https://a.example/"}, {"url": "https://b.example/"}]
    assert request(port, "POST", "/api/batches", body={"type": "count_words_at_url", "items": items})[0] == 202
    assert request(port, "POST", f"/api/jobs/{job_id}/cancel", body={})[0] == 200  # 4 of 4
    status, headers, body = request(port, "POST", "/api/jobs", body=VALID)
    assert status == 429 and int(headers["retry-after"]) > 0
    assert json.loads(body)["error"]["code"] == "too_many_requests"


@pytest.mark.parametrize("host", ["[::127.0.0.1]", "[::ffff:0:7f00:1]"])
def test_embedded_loopback_ipv6_fails_at_once_in_a_real_worker(client, start_worker, host):
    # The kernel routes neither form to loopback, so no listener could see a connection; what shows the worker
    # refused before connecting is the error: a connection attempt ends in a retried connection error instead.
    start_worker()
    response = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": f"http://{host}:80/"}})
    job = wait_for_job(client, response.get_json()["id"])
    assert job["status"] == "failed" and job["error"]["type"] == "RefusedAddress", job["error"]
    assert "attempts" not in job["error"]["message"]  # permanent: not retried as a connection error


@pytest.fixture
def default_policy_worker(env, redis, tmp_path, monkeypatch) -> Iterator[WorkerProcess]:
    """A real worker with the shipped fetch policy: FETCH_ALLOW_NETWORKS unset."""
    monkeypatch.delenv("FETCH_ALLOW_NETWORKS", raising=False)
    shipped = {name: value for name, value in env.items() if name != "FETCH_ALLOW_NETWORKS"}
    worker = WorkerProcess(shipped, (), tmp_path / "worker.log")
    yield worker
    worker.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]", "[::ffff:127.0.0.1]"])
def test_the_shipped_policy_refuses_loopback_in_a_real_worker(client, default_policy_worker, host):
    # The recorder listens on every local address, IPv4 and IPv6: each of these hosts would reach it.
    with ConnectionRecorder("::") as recorder:
        url = f"http://{host}:{recorder.port}/"
        job = wait_for_job(client, client.post("/api/jobs", json={"type": "count_words_at_url",
                                                                  "params": {"url": url}}).get_json()["id"])
        assert job["status"] == "failed" and job["error"]["type"] == "RefusedAddress", default_policy_worker.log()
        assert not recorder.wait_for(1, timeout=0.2)
