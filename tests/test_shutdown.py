"""No orphans, no hangs: a worker supervisor dies with its parent, and a SIGTERM ends every worker process within
SHUTDOWN_GRACE + 5 s even when Redis is gone. Real processes, a private redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq.worker import Worker

from engine.embedded_redis import RedisServer
from engine.queues import make_queues
from engine.settings import PROJECT_ROOT
from tests.faults import wait_until

pytestmark = pytest.mark.integration
GRACE = 2


def alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def tree(pid: int) -> set[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().split(") ")[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, []))
    return found


@pytest.fixture
def private_redis(tmp_path: Path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def worker_env(env: dict[str, str], url: str) -> dict[str, str]:
    return {**os.environ, **env, "REDIS_URL": url, "SHUTDOWN_GRACE": str(GRACE), "DIAGNOSTIC_JOBS": "1"}


def test_a_supervisor_whose_parent_dies_stops_with_its_workers(env, private_redis, tmp_path):
    # A parent (a test runner, honcho, a terminal) that starts the supervisor and is then killed.
    with open(tmp_path / "worker.log", "wb") as log:
        parent = subprocess.Popen(
            [sys.executable, "-c", "import subprocess, sys, time; "
             f"p = subprocess.Popen([sys.executable, {str(PROJECT_ROOT / 'worker.py')!r}, '--processes', '2']); "
             "print(p.pid, flush=True); time.sleep(600)"],
            cwd=PROJECT_ROOT, env=worker_env(env, private_redis.url), stdout=subprocess.PIPE, stderr=log,
            start_new_session=True)
    with parent.stdout:
        supervisor = int(parent.stdout.readline())
    redis = Redis.from_url(private_redis.url)
    assert wait_until(lambda: len(Worker.all_keys(connection=redis)) == 2, 60), (tmp_path / "worker.log").read_text()
    processes = tree(supervisor)
    try:
        assert len(processes) == 3  # the supervisor and its two workers
        parent.kill()
        parent.wait()
        assert wait_until(lambda: not any(alive(pid) for pid in processes), GRACE + 5, pause=0.1), (
            [pid for pid in processes if alive(pid)], (tmp_path / "worker.log").read_text())
        assert Worker.all_keys(connection=redis) == []  # they stopped warm: each recorded its death
    finally:
        redis.close()
        for pid in processes:  # a failed run must not leave them behind either
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("running", [False, True], ids=["idle", "with-a-job"])
def test_sigterm_ends_every_process_in_time_when_redis_is_gone(env, private_redis, tmp_path, running):
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        supervisor = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "worker.py"), "--processes", "2"],
                                      cwd=PROJECT_ROOT, env=worker_env(env, private_redis.url), stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
    try:
        redis = Redis.from_url(private_redis.url)
        assert wait_until(lambda: len(Worker.all_keys(connection=redis)) == 2, 60), log_path.read_text()
        if running:
            job = make_queues(redis)["default"].enqueue_call(func="tests.diagnostics.sleep", kwargs={"seconds": 60},
                                                              timeout=120)
            assert wait_until(lambda: job.get_status(refresh=True) == "started", 30), log_path.read_text()
        processes = tree(supervisor.pid)
        private_redis.stop()
        sent = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        assert wait_until(lambda: not any(alive(pid) for pid in processes), GRACE + 5, pause=0.1), (
            [pid for pid in processes if alive(pid)], log_path.read_text())
        assert time.monotonic() - sent <= GRACE + 5
        redis.close()
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
        supervisor.wait()
