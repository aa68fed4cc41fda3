"""The worker dyno as shipped (supervised processes × threads) under whole-dyno faults, with real processes:
SIGKILL with 16+ jobs in flight and SIGTERM with jobs running lose nothing; RQ's tools see every running job.
Recovery times are printed (run with -s)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis import Redis
from rq import Retry
from rq.job import Job
from rq.worker import Worker

from engine.queues import SERIALIZER, CatalogJob, make_queues
from tests.faults import wait_until

pytestmark = pytest.mark.integration

DIAG = {"DIAGNOSTIC_JOBS": "1"}


def submit(redis: Redis, seconds: float, retry: Retry | None = None) -> Job:
    """A diagnostic sleep job (it blocks in C, as a job waiting on the network does) on the default queue."""
    return make_queues(redis)["default"].enqueue_call(func="tests.diagnostics.sleep", kwargs={"seconds": seconds},
                                                      timeout=60, retry=retry)


def statuses(redis: Redis, jobs: list[Job]) -> list[str]:
    """Each job's RQ status now."""
    found = []
    for job in jobs:
        status = CatalogJob.fetch(job.id, connection=redis, serializer=SERIALIZER).get_status(refresh=False)
        found.append(getattr(status, "value", status))
    return found


def test_every_running_job_of_every_thread_shows_in_rq_tools(redis, start_worker, env):
    worker = start_worker("--processes", "1", "--threads", "4", "--name", "seen", extra_env=DIAG)
    jobs = [submit(redis, 8.0) for _ in range(3)]  # long enough to be running still when `rq info` has started
    assert wait_until(lambda: statuses(redis, jobs) == ["started"] * 3, 30), worker.log()
    [rq_worker] = Worker.all(connection=redis)
    executions = rq_worker.get_current_executions()
    assert sorted(e.job_id for e in executions) == sorted(j.id for j in jobs)
    assert rq_worker.get_state() == "busy"
    # rq-dashboard lists a queue's running jobs from its StartedJobRegistry: all three are there.
    started = make_queues(redis)["default"].started_job_registry.get_job_ids(cleanup=False)
    assert sorted(started) == sorted(j.id for j in jobs)
    rq = str(Path(sys.executable).parent / "rq")
    info = subprocess.run([rq, "info", "--url", env["REDIS_URL"], "-W"], capture_output=True, text=True, timeout=30)
    assert rq_worker.name in info.stdout and "busy" in info.stdout, info.stdout + info.stderr


def test_sigkill_of_the_whole_dyno_with_16_jobs_in_flight_loses_nothing(redis, start_worker):
    first = start_worker("--processes", "2", "--threads", "16", extra_env=DIAG)
    jobs = [submit(redis, 4.0, retry=Retry(max=1)) for _ in range(24)]
    assert wait_until(lambda: statuses(redis, jobs).count("started") >= 16, 30), first.log()
    in_flight = statuses(redis, jobs).count("started")
    os.killpg(first.process.pid, signal.SIGKILL)  # the supervisor and every worker process, as a lost host
    killed_at = time.monotonic()
    start_worker("--processes", "2", "--threads", "16", extra_env=DIAG)
    assert wait_until(lambda: "started" not in statuses(redis, jobs[:in_flight]), 30, pause=0.1)
    recovery = time.monotonic() - killed_at
    assert wait_until(lambda: statuses(redis, jobs) == ["finished"] * len(jobs), 60), statuses(redis, jobs)
    interrupted = [j for j in jobs if CatalogJob.fetch(j.id, connection=redis, serializer=SERIALIZER)
                   .meta.get("interruptions") == ["WorkerLost"]]
    assert len(interrupted) >= 16
    print(f"\ndyno SIGKILL: jobs={len(jobs)} in_flight={in_flight} interrupted={len(interrupted)} lost=0 "
          f"recovered_within={recovery:.1f}s")


def test_sigterm_with_jobs_running_finishes_short_ones_and_requeues_long_ones(redis, start_worker):
    grace = 5
    worker = start_worker("--processes", "2", "--threads", "8", extra_env={**DIAG, "SHUTDOWN_GRACE": str(grace)})
    # Both processes ready first, so all 12 jobs are claimed at once, not the short ones ending before the rest start.
    assert wait_until(lambda: len(Worker.all(connection=redis)) == 2, 30), worker.log()
    short = [submit(redis, 3.0) for _ in range(6)]
    long = [submit(redis, 20.0) for _ in range(6)]
    assert wait_until(lambda: statuses(redis, short + long).count("started") == 12, 30), worker.log()
    sent, sent_at = time.monotonic(), datetime.now(UTC)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(30) == 0, worker.log()
    stopped_in = time.monotonic() - sent
    assert stopped_in < grace + 5  # the grace, not the 20 s jobs
    assert statuses(redis, short) == ["finished"] * 6
    ended = [CatalogJob.fetch(j.id, connection=redis, serializer=SERIALIZER).ended_at for j in short]
    assert all(at is not None and at.replace(tzinfo=UTC) > sent_at for at in ended)  # running at SIGTERM, then done
    assert statuses(redis, long) == ["queued"] * 6
    front = {raw.decode() for raw in redis.lrange("rq:queue:default", 0, 5)}
    assert front == {job.id for job in long}
    assert all(CatalogJob.fetch(j.id, connection=redis, serializer=SERIALIZER).meta["interruptions"]
               == ["Interrupted"] for j in long)
    assert Worker.all(connection=redis) == []  # every process deregistered
    start_worker("--processes", "1", "--threads", "8", extra_env=DIAG)
    assert wait_until(lambda: statuses(redis, long) == ["finished"] * 6, 60), statuses(redis, long)
    print(f"\ndyno SIGTERM: running=12 finished_in_grace=6 requeued=6 lost=0 exited_after={stopped_in:.1f}s")
