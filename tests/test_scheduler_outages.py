"""The scheduler keeps delayed jobs and retries on time through Redis restarts, outages and dead lock holders.

Real redis-server and worker processes: a job delayed by a few seconds and a retry due a few seconds after its
first failure both fall due while Redis is away; each must start within LATE_AT_MOST seconds of its time.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime

import pytest
from redis import Redis
from rq.scheduler import RQScheduler
from rq.utils import utcformat

from engine.embedded_redis import RedisServer
from engine.queues import fetch_job
from engine.scheduler import STALE_AFTER, KeptScheduler
from engine.settings import QUEUE_NAMES, Settings
from engine.status import job_view
from tests.faults import wait_until
from web import create_app

pytestmark = pytest.mark.integration
LATE_AT_MOST = 5.0  # seconds after its due time by which a delayed job or a retry must have started
SCHEDULED = "rq:scheduled:default"


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, which the test may stop, freeze and restart (AOF on)."""
    server = RedisServer(tmp_path / "own-redis").start()
    yield server
    if server.process is not None and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


def fail_once(request):
    """A page that answers 500 the first time (the job is retried) and a page after that."""
    fail_once.calls = getattr(fail_once, "calls", 0) + 1
    status, body = (500, b"oops") if fail_once.calls == 1 else (200, b"<p>back again</p>")
    request.send_response(status)
    request.send_header("Content-Type", "text/html")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def submit(client, url: str, **extra) -> str:
    response = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": url}, **extra})
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def due_time(redis: Redis, job_id: str) -> float:
    """When the scheduler is to move the job to its queue (its score in the scheduled registry)."""
    assert wait_until(lambda: redis.zscore(SCHEDULED, job_id) is not None, 10), f"{job_id} never scheduled"
    return redis.zscore(SCHEDULED, job_id)


def lateness(redis: Redis, job_id: str, due: float) -> float:
    view = job_view(fetch_job(redis, job_id))
    assert view["status"] == "finished", view
    return datetime.fromisoformat(view["started_at"]).timestamp() - due


def restart(server: RedisServer) -> float:
    """Stop Redis for 4 s and start it again; returns when it is back."""
    server.stop()  # SIGTERM: Redis writes its AOF and exits
    time.sleep(4)
    server.start()
    return time.time()


def freeze(server: RedisServer) -> float:
    """Freeze Redis for 4 s; returns when it is back."""
    os.kill(server.process.pid, signal.SIGSTOP)  # connections hang: clients see timeouts, not refusals
    time.sleep(4)
    os.kill(server.process.pid, signal.SIGCONT)
    return time.time()


@pytest.mark.parametrize("fault", [restart, freeze], ids=["restart", "outage"])
def test_delayed_jobs_and_retries_run_on_time_after_redis_comes_back(own_redis, env, start_worker, page_server,
                                                                     fault):
    env = {**env, "REDIS_URL": own_redis.url, "RETRY_INTERVALS": "3"}
    client = create_app({"SETTINGS": Settings.from_env(env)}).test_client()
    redis = Redis.from_url(own_redis.url)
    worker = start_worker(extra_env={**env, "WORKER_PROCESSES": "1", "WORKER_THREADS": "2"})
    assert wait_until(lambda: redis.get("rq:scheduler-lock:default"), 20), worker.log()
    fail_once.calls = 0
    path = f"/fail-once-{fault.__name__}"
    page_server.add_handler(path, fail_once)
    retried = submit(client, page_server.url(path))
    delayed = submit(client, page_server.url("/"), delay_seconds=2)
    dues = {retried: due_time(redis, retried), delayed: due_time(redis, delayed)}
    back = fault(own_redis)  # both fall due while Redis is away
    assert wait_until(lambda: all(job_view(fetch_job(redis, j))["status"] == "finished" for j in dues), 20), \
        (worker.log(), [job_view(fetch_job(redis, j)) for j in dues])
    # Late counts from when Redis was back: the outage itself is the fault's, not the scheduler's.
    late = {job_id: lateness(redis, job_id, max(due, back)) for job_id, due in dues.items()}
    print(f"\nscheduler after {fault.__name__}: retry late {late[retried]:.1f} s, delayed late {late[delayed]:.1f} s")
    assert max(late.values()) <= LATE_AT_MOST, late
    assert worker.process.poll() is None, worker.log()
    redis.close()


def test_a_lock_left_by_a_dead_scheduler_does_not_hold_delayed_jobs_back(redis, client, start_worker, page_server):
    # What a SIGKILLed `rq worker --with-scheduler` leaves: its locks (61 s) and its metadata, heartbeat gone quiet.
    dead = RQScheduler(list(QUEUE_NAMES), connection=redis, name="killed-scheduler")
    dead.acquire_locks()
    redis.hset(dead.key, mapping={"name": dead.name, "last_heartbeat": utcformat(datetime.fromtimestamp(
        time.time() - 30))})
    dead.connection.connection_pool.disconnect()  # RQ made a pool of its own: left open, it warns when collected
    worker = start_worker()
    # Timed from a running worker: its start-up on a loaded machine is not what is measured here.
    assert wait_until(lambda: redis.scard("rq:workers"), 30), worker.log()
    job_id = submit(client, page_server.url("/"), delay_seconds=2)
    due = due_time(redis, job_id)
    assert wait_until(lambda: job_view(fetch_job(redis, job_id))["status"] == "finished", 30), worker.log()
    assert lateness(redis, job_id, due) <= LATE_AT_MOST
    assert redis.get("rq:scheduler-lock:default") != b"killed-scheduler"
    assert "took over the lock for default from killed-scheduler" in worker.log()


def test_a_live_scheduler_keeps_its_locks_and_a_silent_one_loses_them(redis):
    first = KeptScheduler(list(QUEUE_NAMES), redis, name="first")
    second = KeptScheduler(list(QUEUE_NAMES), redis, name="second")
    first.tick()
    second.tick()
    assert first.acquired_locks == set(QUEUE_NAMES) and not second.acquired_locks  # exactly one scheduler
    deadline = time.monotonic() + STALE_AFTER + 2
    while time.monotonic() < deadline and not second.acquired_locks:
        second.tick()  # the first one has stopped ticking: as good as dead
        time.sleep(0.5)
    assert second.acquired_locks == set(QUEUE_NAMES)
    first.tick()  # it comes back (a long pause): it sees the locks are taken and schedules nothing
    assert not first.acquired_locks
    for scheduler in (first, second):
        scheduler.shutdown()


def test_two_schedulers_starting_together_never_split_the_queues(redis):
    splits = []
    for round_ in range(40):
        redis.flushall()
        pair = [KeptScheduler(list(QUEUE_NAMES), redis, name=f"s{round_}-{n}") for n in range(2)]
        start, errors = threading.Barrier(2), []
        threads = [threading.Thread(target=tick_after, args=(start, scheduler, errors)) for scheduler in pair]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        held = [scheduler.acquired_locks for scheduler in pair]
        if set() not in held:
            splits.append(held)
        assert set().union(*held) == set(QUEUE_NAMES)  # every queue is scheduled
        for scheduler in pair:
            scheduler.shutdown()
    assert not splits, f"{len(splits)} of 40 starts split the queues between two schedulers: {splits[:3]}"


@pytest.mark.parametrize(("set_ago", "taken"), [(STALE_AFTER + 5, True), (0, False)], ids=["old", "just-set"])
def test_a_lock_without_a_scheduler_behind_it_is_taken_over_once_it_is_old(redis, set_ago, taken):
    # No metadata hash: either it expired with its scheduler, or a scheduler has just taken its locks.
    scheduler = KeptScheduler(list(QUEUE_NAMES), redis, name="newcomer")
    for name in QUEUE_NAMES:
        redis.set(RQScheduler.get_locking_key(name), "gone", ex=int(scheduler.lock_ttl - set_ago))
    scheduler.tick()
    assert scheduler.acquired_locks == (set(QUEUE_NAMES) if taken else set())
    scheduler.shutdown()


def tick_after(start: threading.Barrier, scheduler: KeptScheduler, errors: list[Exception]) -> None:
    start.wait()
    try:
        scheduler.tick()
    except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in the thread
        errors.append(exc)
