"""Long-poll under the production gunicorn settings: 200 concurrent waiters must not starve /healthz."""

import http.client
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.embedded_redis import free_port
from engine.settings import PROJECT_ROOT
from tests.conftest import WorkerProcess

pytestmark = pytest.mark.integration

WAITERS = 200
ESTABLISHED = "01"  # a TCP state in /proc/net/tcp


def procfile_command(process_type: str) -> list[str]:
    """The Procfile's command for ``process_type``, exactly as production runs it."""
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process_type:
            return shlex.split(command)
    raise AssertionError(f"no {process_type}: line in the Procfile")


def get(port: int, path: str, timeout: float, sent: Callable[[], None] = lambda: None) -> tuple[int, dict, float]:
    """GET a path on the local server: (status, JSON body, seconds taken); ``sent()`` once the request is out."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        sent()
        response = connection.getresponse()
        return response.status, json.loads(response.read()), time.monotonic() - started
    finally:
        connection.close()


def requests_read_by(port: int) -> int:
    """Connections the server on ``port`` accepted and read all that was sent to it (from /proc/net/tcp)."""
    held = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _, state, queues = line.split()[1:5]
        if int(local.split(":")[1], 16) == port and state == ESTABLISHED and queues.endswith(":00000000"):
            held += 1
    return held


@pytest.fixture
def gunicorn(env, redis, tmp_path):
    """The real web process: gunicorn with web/gunicorn_conf.py in production mode (bound to loopback)."""
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", *procfile_command("web"), "--bind", f"127.0.0.1:{port}"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env, "APP_ENV": "production", "WEB_CONCURRENCY": "2", "PORT": str(port)},
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if get(port, "/healthz", 2)[0] == 200:
                break
        except OSError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
        time.sleep(0.2)
    yield port
    process.terminate()
    process.wait(30)
    log.close()
    assert "MonkeyPatchWarning" not in (tmp_path / "gunicorn.log").read_text()


def test_200_waiters_do_not_starve_healthz(gunicorn, client, env, tmp_path, page_server):
    job = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": page_server.url("/")}})
    job_id = job.get_json()["id"]
    answers: list[tuple[int, dict, float]] = []
    errors: list[BaseException] = []
    sent = threading.Semaphore(0)

    def wait() -> None:
        try:
            answers.append(get(gunicorn, f"/api/jobs/{job_id}?wait=30", 60, sent.release))
        except BaseException as exc:  # noqa: B036 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=wait) for _ in range(WAITERS)]
    for thread in threads:
        thread.start()
    for _ in range(WAITERS):
        assert sent.acquire(timeout=30) and not errors, errors[:3]
    # Every request is in the server's socket now; once each socket is read, every waiter is held by gunicorn.
    deadline = time.monotonic() + 30
    while requests_read_by(gunicorn) < WAITERS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert requests_read_by(gunicorn) == WAITERS
    # With no worker running, the job stays queued: every waiter is holding a request open now.
    assert not answers and not errors
    for _ in range(5):
        status, body, took = get(gunicorn, "/healthz", 15)
        assert (status, body) == (200, {"status": "ok"})
        # Generous for a loaded test machine (bench/bench_longpoll.py measures ~2 ms); starved, it would take ~30 s.
        assert took < 5.0, f"/healthz took {took:.1f} s with {WAITERS} waiters"
    worker = WorkerProcess(env, ("--no-scheduler",), tmp_path / "worker.log")
    try:
        for thread in threads:
            thread.join(60)
    finally:
        worker.stop()
    assert not errors, errors[:3]
    assert len(answers) == WAITERS
    assert {(status, body["status"]) for status, body, _ in answers} == {(200, "finished")}
    assert max(took for _, _, took in answers) < 25  # answered when the job ended, not at the 30 s deadline
