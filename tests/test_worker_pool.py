"""The threaded worker under its supervisor, with real processes: concurrency, crashes, hangs, recycling, stop."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis import Redis
from rq import Retry
from rq.command import send_stop_job_command
from rq.job import Job
from rq.worker import Worker

from engine.queues import SERIALIZER, CatalogJob, make_queues

pytestmark = pytest.mark.integration

DIAG = {"DIAGNOSTIC_JOBS": "1"}
TERMINAL = {"finished", "failed", "stopped", "canceled"}


def submit(redis: Redis, name: str, timeout: int = 30, retry: Retry | None = None, **params: Any) -> Job:
    """Enqueue a diagnostic job straight onto the default queue."""
    queue = make_queues(redis)["default"]
    return queue.enqueue_call(func=f"tests.diagnostics.{name}", kwargs=params, timeout=timeout, retry=retry)


def wait_status(redis: Redis, job: Job, statuses: set[str], deadline: float = 30.0) -> Job:
    """Poll until the job reaches one of ``statuses`` (generous deadline: the machine is shared)."""
    end = time.monotonic() + deadline
    while True:
        fresh = CatalogJob.fetch(job.id, connection=redis, serializer=SERIALIZER)
        status = fresh.get_status(refresh=False)
        if getattr(status, "value", status) in statuses or time.monotonic() > end:
            return fresh
        time.sleep(0.05)


def status_of(job: Job) -> str:
    status = job.get_status(refresh=False)
    return getattr(status, "value", status)


def ran_on(job: Job) -> str:
    """The name of the worker process that produced the job's latest result."""
    result = job.latest_result()
    assert result is not None
    return result.worker_name


def test_one_process_runs_jobs_concurrently(redis, start_worker):
    worker = start_worker("--processes", "1", "--threads", "4", extra_env=DIAG)
    jobs = [submit(redis, "sleep", seconds=1.0) for _ in range(4)]
    done = [wait_status(redis, job, TERMINAL) for job in jobs]
    assert [status_of(j) for j in done] == ["finished"] * 4, worker.log()
    # All four ran at the same time in one process: each started before any ended.
    assert max(j.started_at for j in done) < min(j.ended_at for j in done)
    assert len({ran_on(j) for j in done}) == 1


def test_crash_takes_no_other_job_down(redis, start_worker):
    worker = start_worker("--processes", "1", "--threads", "2", extra_env=DIAG)
    sibling = submit(redis, "sleep", seconds=5, retry=Retry(max=1))  # still running when the crash comes
    assert status_of(wait_status(redis, sibling, {"started"})) == "started", worker.log()
    crash = submit(redis, "crash_process")
    crashed = wait_status(redis, crash, TERMINAL)
    assert status_of(crashed) == "failed", worker.log()
    assert crashed.meta["error"]["type"] == "WorkerLost"  # recovered by the reaper, no retries left
    # The sibling shared the dead process: recovered at once and run again by the replacement.
    survivor = wait_status(redis, sibling, TERMINAL)
    assert status_of(survivor) == "finished", worker.log()
    assert "recovered 2 job(s)" in worker.log()
    assert status_of(wait_status(redis, submit(redis, "noop"), TERMINAL)) == "finished"


def test_hung_job_fails_and_its_process_is_replaced(redis, start_worker):
    worker = start_worker("--processes", "1", "--threads", "2", extra_env={**DIAG, "WORKER_HANG_GRACE": "1"})
    hung = submit(redis, "sleep", timeout=1, seconds=60)  # blocks in C: the timeout cannot interrupt it
    neighbour = submit(redis, "sleep", seconds=1.0)
    failed = wait_status(redis, hung, TERMINAL)
    assert status_of(failed) == "failed", worker.log()
    assert failed.meta["error"]["type"] == "JobTimeout"
    finished = wait_status(redis, neighbour, TERMINAL)
    assert status_of(finished) == "finished", worker.log()
    after = wait_status(redis, submit(redis, "noop"), TERMINAL)
    assert status_of(after) == "finished", worker.log()
    assert ran_on(after) != ran_on(finished)  # the hung process was recycled


def test_timeout_interrupts_a_running_job_without_recycling(redis, start_worker):
    worker = start_worker("--processes", "1", "--threads", "2", extra_env=DIAG)
    spinning = wait_status(redis, submit(redis, "spin", timeout=1, seconds=60), TERMINAL)
    assert status_of(spinning) == "failed", worker.log()
    assert spinning.meta["error"]["type"] == "JobTimeout"
    after = wait_status(redis, submit(redis, "noop"), TERMINAL)
    assert ran_on(after) == ran_on(spinning)


def test_stop_job_stops_only_that_job(redis, start_worker):
    worker = start_worker("--processes", "1", "--threads", "2", extra_env=DIAG)
    target = submit(redis, "spin", seconds=60)
    other = submit(redis, "sleep", seconds=1.0)
    wait_status(redis, target, {"started"})
    send_stop_job_command(redis, target.id, serializer=SERIALIZER)
    assert status_of(wait_status(redis, target, TERMINAL)) == "stopped", worker.log()
    assert status_of(wait_status(redis, other, TERMINAL)) == "finished", worker.log()


def test_stop_reaches_a_job_blocked_in_c(redis, start_worker):
    worker = start_worker("--processes", "1", "--threads", "2", extra_env=DIAG)
    blocked = submit(redis, "sleep", seconds=60)  # in C: the stop exception cannot reach it
    running = wait_status(redis, blocked, {"started"})
    send_stop_job_command(redis, blocked.id, serializer=SERIALIZER)
    assert status_of(wait_status(redis, blocked, TERMINAL)) == "stopped", worker.log()
    after = wait_status(redis, submit(redis, "noop"), TERMINAL)
    assert status_of(after) == "finished", worker.log()
    assert ran_on(after) != running.worker_name  # the process holding the blocked thread was replaced


def test_memory_limit_recycles_the_process(redis, start_worker):
    worker = start_worker("--processes", "1", "--threads", "1", extra_env={**DIAG, "WORKER_MAX_RSS_MB": "150"})
    leak = wait_status(redis, submit(redis, "hold_memory", mb=200), TERMINAL)
    assert status_of(leak) == "finished", worker.log()
    after = wait_status(redis, submit(redis, "noop"), TERMINAL)
    assert status_of(after) == "finished", worker.log()
    assert ran_on(after) != ran_on(leak)
    assert "recycled itself" in worker.log()


def test_max_jobs_recycles_and_loses_nothing(redis, start_worker):
    worker = start_worker("--processes", "1", "--threads", "1", "--max-jobs", "2", extra_env=DIAG)
    jobs = [wait_status(redis, submit(redis, "noop"), TERMINAL) for _ in range(3)]
    assert [status_of(j) for j in jobs] == ["finished"] * 3, worker.log()
    assert len({ran_on(j) for j in jobs}) == 2  # 2 jobs, then a fresh process


def test_warm_stop_finishes_running_jobs_and_deregisters(redis, start_worker):
    worker = start_worker("--processes", "2", "--threads", "2", extra_env=DIAG)
    job = submit(redis, "sleep", seconds=1.0)
    wait_status(redis, job, {"started"})
    worker.stop()
    assert worker.process.returncode == 0
    assert status_of(wait_status(redis, job, TERMINAL, deadline=1)) == "finished", worker.log()
    assert Worker.all(connection=redis) == []
