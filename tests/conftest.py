"""Layered fixtures: redis_server (session) → settings → app → client; worker processes on demand."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from engine.embedded_redis import RedisServer
from engine.settings import PROJECT_ROOT, Settings
from web import create_app

TEST_PASSWORD = "dashboard-test-password"
TEST_API_TOKEN = "test-api-token-0123456789"
BEARER = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
TERMINAL = {"finished", "failed", "canceled", "stopped"}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server for this test session, on a unix socket in a temporary directory."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[Redis]:
    """A client of the session's own server, emptied before each test (it is ours: nobody else uses it)."""
    client = Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def env(redis_server: RedisServer) -> dict[str, str]:
    """The environment a test stack runs with: our Redis, loopback fetches allowed for the page server."""
    return {
        "REDIS_URL": redis_server.url,
        "APP_ENV": "testing",
        "SECRET_KEY": "test-secret-key-0123456789",
        "DASHBOARD_PASSWORD": TEST_PASSWORD,
        "API_TOKEN": TEST_API_TOKEN,
        "FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
        "FETCH_TIMEOUT": "5",
        "RETRY_INTERVALS": "1,1",  # 3 attempts a second apart, so retry tests take seconds (default 5,30,120)
    }


@pytest.fixture
def settings(env: dict[str, str], redis: Redis) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def app(settings: Settings):
    app = create_app({"SETTINGS": settings, "TESTING": True})
    yield app
    app.extensions["redis"].close()


@pytest.fixture
def client(app):
    """A client holding the API token (an operator's script): protected job types and the job list are open to it.

    Tests of what a visitor without credentials may do use ``anonymous``.
    """
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = BEARER["Authorization"]
    return client


@pytest.fixture
def anonymous(app):
    """A client with no credential at all: a visitor from the internet."""
    return app.test_client()


class WorkerProcess:
    """A real ``python worker.py`` process."""

    def __init__(self, env: dict[str, str], args: tuple[str, ...], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "worker.py"), *args],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() can also reap its supervised children
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Warm shutdown (SIGTERM lets a running job finish), then SIGKILL for whatever is left of the group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # A killed supervisor's children would live on and keep writing to the next test's Redis.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker(env: dict[str, str], redis: Redis, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory for worker processes; all are stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess({**env, **(extra_env or {})}, args, tmp_path / f"worker{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def worker(start_worker) -> WorkerProcess:
    """One real worker on high, default and low, with the scheduler."""
    return start_worker()


def wait_for_job(client, job_id: str, timeout: float = 30.0) -> dict:
    """Poll the API until the job reaches a terminal state."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/jobs/{job_id}").get_json()
        if body["status"] in TERMINAL or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


@pytest.fixture(scope="session")
def page_server():
    """A local HTTP server for fixture pages (session-wide; tests add the routes they need)."""
    from tests.pageserver import PageServer

    with PageServer() as server:
        server.add("/", body=SAMPLE_PAGE, headers={"Content-Type": "text/html; charset=utf-8"})
        yield server


SAMPLE_PAGE = (
    b"<html><head><style>p{color:red}</style></head><body>"
    b"<p>The cat and the hat.</p><p>The <b>c</b>at don't sleep.</p><script>var the = 1;</script>"
    b"</body></html>"
)


@pytest.fixture(scope="session")
def mail_server():
    """A real SMTP server (aiosmtpd) in this process, shared by the mail tests."""
    from tests.mailserver import MailServer

    with MailServer() as server:
        yield server


@pytest.fixture
def smtp(mail_server):
    """The shared SMTP server, with its mailbox and scripted replies reset."""
    mail_server.reset()
    return mail_server
