"""The worker writes RQ's own records, proven through RQ's public readers (Job.fetch, results, registries,
Worker.all, rq info, rq-dashboard's JSON), and touches RQ through few, named seams."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Retry, Worker
from rq.command import send_stop_job_command
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.results import Result

import engine
import web
from engine.queues import SERIALIZER, CatalogJob, make_queues
from engine.worker import StackWorker
from tests.conftest import TEST_PASSWORD
from tests.test_dashboard import basic
from web.dashboard import JsonWorkers

DIAG = {"DIAGNOSTIC_JOBS": "1"}
TERMINAL = {"finished", "failed", "stopped", "canceled"}

# Every RQ method our RQ subclasses override, and why. Nothing else of RQ's is overridden.
SEAMS = {
    (StackWorker, "__init__"): "takes our settings and insists on JSON and the catalogue, whatever RQ's CLI passes",
    (StackWorker, "work"): "the worker's own loop: claim in one script, run in threads, finish in groups",
    (CatalogJob, "func"): "the allow-list: a job runs only a catalogued function, never an imported dotted path",
    (CatalogJob, "success_callback"): "callbacks are resolved by import path: a forged one must never run",
    (CatalogJob, "failure_callback"): "RQ's registry cleanup runs it for abandoned jobs: a forged one must not run",
    (CatalogJob, "stopped_callback"): "same as the other callbacks",
    (JsonWorkers, "all"): "rq-dashboard reads workers without a serializer; ours are JSON",
}
# RQ's private names we use, and why (grep for them: each is used once).
PRIVATES = {"Queue._enqueue_job": "re-queue a started job at the front without RQ's dependency checks"}


def our_rq_subclasses() -> set[type]:
    """Every class defined in the engine or the web app that inherits from one of RQ's."""
    found = set()
    for package in (engine, web):
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if "gunicorn" in info.name:  # gunicorn's settings monkey-patch the process on import; no RQ classes
                continue
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if (inspect.isclass(value) and value.__module__ == module.__name__
                        and any(base.__module__.startswith("rq.") for base in value.__mro__[1:])):
                    found.add(value)
    return found


def rq_overrides() -> set[tuple[type, str]]:
    found = set()
    for klass in our_rq_subclasses():
        rq_bases = [base for base in klass.__mro__[1:] if base.__module__.startswith("rq.")]
        for name, value in vars(klass).items():
            if (inspect.isfunction(value) or isinstance(value, property | classmethod)) and any(
                    name in vars(base) for base in rq_bases):
                found.add((klass, name))
    return found


def test_every_override_of_rq_is_listed_with_its_reason():
    assert rq_overrides() == set(SEAMS)
    assert len(SEAMS) <= 10 and len(PRIVATES) <= 2


def test_the_privates_we_use_are_the_only_ones():
    root = Path(__file__).resolve().parent.parent
    uses = {name: 0 for name in PRIVATES}
    for path in [*root.glob("engine/*.py"), *root.glob("web/*.py"), root / "worker.py", root / "cli.py"]:
        text = path.read_text()
        for name in PRIVATES:
            uses[name] += text.count("." + name.split(".")[1] + "(")
    assert uses == {name: 1 for name in PRIVATES}


# --- behaviour, through RQ's readers -------------------------------------------------------------------------
def enqueue(redis: Redis, name: str, **options) -> Job:
    return make_queues(redis)["default"].enqueue_call(func=f"tests.diagnostics.{name}", **options)


def wait(redis: Redis, job: Job, statuses: set[str], deadline: float = 30.0) -> Job:
    end = time.monotonic() + deadline
    while True:
        # One snapshot: get_status() would read the status again, later than the meta and fields fetched here.
        fresh = Job.fetch(job.id, connection=redis, serializer=SERIALIZER)
        if fresh.get_status(refresh=False) in statuses or time.monotonic() > end:
            return fresh
        time.sleep(0.05)


@pytest.fixture
def one_worker(start_worker):
    return start_worker("--processes", "0", "--threads", "4", "--name", "records", extra_env=DIAG)


@pytest.mark.integration
def test_a_finished_job_has_rqs_records(redis, one_worker):
    job = enqueue(redis, "sleep", kwargs={"seconds": 0.2}, result_ttl=600)
    done = wait(redis, job, TERMINAL)
    assert done.get_status(refresh=False) == "finished", one_worker.log()
    assert done.worker_name == "records" and done.started_at < done.ended_at <= done.last_heartbeat
    result = done.latest_result()
    assert result.type == Result.Type.SUCCESSFUL and result.return_value == 0.2 and result.worker_name == "records"
    assert result.execution_id and result.execution_started_at <= result.execution_ended_at
    assert done.return_value() == 0.2
    assert job.id in FinishedJobRegistry("default", connection=redis).get_job_ids()
    assert job.id not in StartedJobRegistry("default", connection=redis).get_job_ids()
    expires = FinishedJobRegistry("default", connection=redis).get_expiration_time(done)
    assert 590 <= (expires - done.ended_at).total_seconds() <= 601  # kept for its result_ttl
    worker = Worker.find_by_key("rq:worker:records", connection=redis, serializer=SERIALIZER)
    assert worker.successful_job_count == 1 and worker.failed_job_count == 0 and worker.total_working_time > 0.2
    assert worker.get_current_executions(refresh=True) == []


@pytest.mark.integration
def test_a_running_job_is_seen_by_rq_info_workers_and_the_started_registry(env, redis, one_worker):
    job = enqueue(redis, "sleep", kwargs={"seconds": 8})  # running still when `rq info` has started
    running = wait(redis, job, {"started"})
    assert running.get_status(refresh=False) == "started" and running.worker_name == "records"
    assert job.id in StartedJobRegistry("default", connection=redis).get_job_ids()
    [worker] = [w for w in Worker.all(connection=redis, serializer=SERIALIZER) if w.name == "records"]
    assert [e.job_id for e in worker.get_current_executions()] == [job.id]
    assert worker.get_state() == "busy"
    rq = str(Path(sys.executable).parent / "rq")
    info = subprocess.run([rq, "info", "--url", env["REDIS_URL"], "-W"], capture_output=True, text=True, timeout=30)
    assert "records" in info.stdout and "busy" in info.stdout, info.stdout + info.stderr
    assert wait(redis, job, TERMINAL).get_status(refresh=False) == "finished"


@pytest.mark.integration
def test_a_failed_job_has_rqs_records(redis, one_worker):
    forged = Queue("default", connection=redis, serializer=SERIALIZER).enqueue_call(func="os.getpid")
    done = wait(redis, forged, TERMINAL)
    assert done.get_status(refresh=False) == "failed", one_worker.log()
    assert forged.id in FailedJobRegistry("default", connection=redis).get_job_ids()
    result = done.latest_result()
    assert result.type == Result.Type.FAILED and "ForbiddenJob" in result.exc_string
    assert done.meta["error"]["type"] == "ForbiddenJob"
    worker = Worker.find_by_key("rq:worker:records", connection=redis, serializer=SERIALIZER)
    assert worker.failed_job_count == 1


@pytest.mark.integration
def test_a_retry_with_an_interval_is_scheduled_then_runs_again(redis, start_worker, page_server):
    start_worker("--processes", "0", "--name", "records")  # with the scheduler
    page_server.add("/flaky-records", status=503, body=b"busy")
    job = make_queues(redis)["default"].enqueue_call(
        func="jobs.wordcount.count_words_at_url", kwargs={"url": page_server.url("/flaky-records")},
        retry=Retry(max=1, interval=[4]))  # scheduled long enough to be seen there
    scheduled = wait(redis, job, {"scheduled"})
    assert scheduled.get_status(refresh=False) == "scheduled", scheduled.get_status(refresh=False)
    assert job.id in ScheduledJobRegistry("default", connection=redis).get_job_ids()
    assert scheduled.meta["error"]["type"] == "HttpServerError"  # why it waits
    done = wait(redis, job, {"failed"})
    assert done.get_status(refresh=False) == "failed" and page_server.hits("/flaky-records") == 2
    assert "gave up after 2 attempts" in done.meta["error"]["message"]


@pytest.mark.integration
def test_stop_job_and_timeout_end_through_the_same_records(redis, one_worker):
    stopped = enqueue(redis, "spin", kwargs={"seconds": 60}, timeout=60)
    timed_out = enqueue(redis, "spin", kwargs={"seconds": 60}, timeout=1)
    wait(redis, stopped, {"started"})
    send_stop_job_command(redis, stopped.id, serializer=SERIALIZER)
    assert wait(redis, stopped, TERMINAL).get_status(refresh=False) == "stopped"
    failed = wait(redis, timed_out, TERMINAL)
    assert failed.get_status(refresh=False) == "failed" and "JobTimeoutException" in failed.latest_result().exc_string
    registry = FailedJobRegistry("default", connection=redis).get_job_ids()
    assert stopped.id in registry and timed_out.id in registry  # RQ keeps stopped jobs with the failed ones


@pytest.mark.integration
def test_a_dependent_runs_when_its_parent_finishes(redis, one_worker):
    parent = enqueue(redis, "sleep", kwargs={"seconds": 0.3})
    child = enqueue(redis, "noop", depends_on=parent)
    assert wait(redis, child, TERMINAL).get_status(refresh=False) == "finished", one_worker.log()
    assert Job.fetch(child.id, connection=redis, serializer=SERIALIZER).started_at >= wait(
        redis, parent, TERMINAL).ended_at


@pytest.mark.integration
def test_rq_dashboard_json_shows_the_records(client, redis, one_worker):
    job = enqueue(redis, "noop")
    assert wait(redis, job, TERMINAL).get_status(refresh=False) == "finished"
    auth = basic("admin", TEST_PASSWORD)
    finished = client.get("/rq/0/data/jobs/default/finished/8/asc/1.json", headers=auth).get_json()
    assert job.id in [j["id"] for j in finished["jobs"]]
    shown = client.get(f"/rq/0/data/job/{job.id}.json", headers=auth).get_json()
    assert shown["status"] == "finished" and shown["ended_at"]
    workers = client.get("/rq/0/data/workers.json", headers=auth).get_json()["workers"]
    assert any(w["name"] == "records" and w["successful_job_count"] == 1 for w in workers), workers
