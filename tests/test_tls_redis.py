"""rediss:// with a self-signed certificate, as Heroku Redis serves it: web, worker and dashboard over TLS."""

from __future__ import annotations

import base64
import os

import pytest
import trustme
from redis.exceptions import ConnectionError as RedisConnectionError

from engine.connection import connect
from engine.embedded_redis import RedisServer, free_port
from engine.settings import Settings
from tests.conftest import TEST_PASSWORD, wait_for_job
from tests.system_packages import tls_redis_server
from web import create_app

pytestmark = pytest.mark.integration


def no_tls(reason: str) -> None:
    """Say plainly that TLS could not be tested: a failure under CI, a loud skip on a developer's machine."""
    message = f"TLS Redis not tested: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory):
    """A redis-server serving only TLS on a loopback port (plus a unix socket for start-up checks)."""
    directory = tmp_path_factory.mktemp("tls-redis")
    ca = trustme.CA()  # a throwaway CA nobody trusts: to a client, the server's certificate is self-signed
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": directory / "ca.crt", "cert": directory / "server.crt", "key": directory / "server.key"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    # The shipped Valkey server has no TLS: these tests need a redis-server built with it (Debian's is).
    binary, refusals = tls_redis_server()
    if binary is None:
        no_tls("; ".join(refusals) + ". Debian's redis-server package serves TLS: `python -m tests.system_packages` "
               "installs it as root, or set REDIS_SERVER to one built with TLS")
    port = free_port()
    server = RedisServer(directory, binary=binary, extra=(
        f"tls-port {port}", f"tls-cert-file {paths['cert']}", f"tls-key-file {paths['key']}",
        f"tls-ca-cert-file {paths['ca']}", "tls-auth-clients no",
    ))
    try:
        server.start(timeout=30)
    except RuntimeError as exc:  # it serves TLS, so this is a real start-up failure; the message has what Redis said
        server.stop()
        pytest.fail(f"TLS Redis did not start: {exc}", pytrace=False)
    try:
        yield f"rediss://127.0.0.1:{port}/0", server
    finally:
        server.stop()


@pytest.fixture
def tls_env(env, tls_redis):
    url, server = tls_redis
    with connect(Settings.from_env({"REDIS_URL": server.url})) as client:
        client.flushall()  # our own server, started above
    return {**env, "REDIS_URL": url, "REDIS_TLS_VERIFY": "false"}


def test_certificate_checked_unless_switched_off(tls_env):
    with connect(Settings.from_env({**tls_env, "REDIS_TLS_VERIFY": "true"})) as checked:
        with pytest.raises(RedisConnectionError, match="(?i)certificate verify failed"):
            checked.ping()
    with connect(Settings.from_env(tls_env)) as unchecked:
        assert unchecked.ping() is True


def test_web_worker_and_dashboard_over_tls(tls_env, start_worker, page_server, request):
    app = create_app({"SETTINGS": Settings.from_env({**tls_env, "METRICS_TOKEN": "t" * 20}), "TESTING": True})
    request.addfinalizer(app.extensions["redis"].close)
    client = app.test_client()
    worker = start_worker(extra_env=tls_env)  # with the scheduler, which opens its own connections
    assert client.get("/readyz").get_json() == {"status": "ok", "redis": "ok"}
    response = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": page_server.url("/")}})
    assert response.status_code == 202
    job = wait_for_job(client, response.get_json()["id"])
    assert job["status"] == "finished", worker.log()
    assert job["result"]["total_words"] == 9
    login = {"Authorization": "Basic " + base64.b64encode(f"admin:{TEST_PASSWORD}".encode()).decode()}
    queues = client.get("/rq/0/data/queues.json", headers=login)  # rq-dashboard builds its own client
    assert queues.status_code == 200, queues.get_data(as_text=True)
    assert {q["name"] for q in queues.get_json()["queues"]} >= {"default"}
    assert client.get("/metrics", headers={"Authorization": "Bearer " + "t" * 20}).status_code == 200
    assert "Traceback" not in worker.log() and "Error" not in worker.log(), worker.log()
