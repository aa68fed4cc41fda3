"""Exposed to the internet, against the real web process (gunicorn with web/gunicorn_conf.py, from the Procfile):
forwarded headers trusted only when configured, HSTS only over https, and gunicorn's own refusals as JSON."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from engine.embedded_redis import free_port
from engine.settings import PROJECT_ROOT
from tests.test_longpoll import procfile_command

pytestmark = pytest.mark.integration


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
            body: object = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


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
