"""Health, metrics and job event logs, against the session's redis-server and real worker processes."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq.exceptions import AbandonedJobError

from engine import catalog, events, health, logs, metrics
from engine.embedded_redis import free_port
from engine.enqueue import enqueue
from engine.queues import SERIALIZER, CatalogJob, fetch_job, make_queues
from engine.redis_url import client_redis_url
from engine.settings import PROJECT_ROOT, ConfigError, Settings
from engine.status import job_status
from tests.conftest import wait_for_job
from web import create_app

TOKEN = "metrics-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def poll(predicate, timeout: float = 30.0, interval: float = 0.1):
    """The predicate's first truthy value, or its last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parsed exposition: (sample name, sorted labels) → value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def make_client(env):
    """Test clients of apps built from the test environment plus overrides; their Redis clients are closed after."""
    apps = []

    def make(**overrides: str):
        app = create_app({"SETTINGS": Settings.from_env({**env, **overrides}), "TESTING": True})
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["redis"].close()


# --- settings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "LOUD"),
        ("METRICS_TOKEN", "short"),
        ("METRICS_TOKEN", "has a space in it, sixteen+"),
        ("READYZ_REQUIRE_WORKER", "maybe"),
    ],
)
def test_bad_operations_settings_name_the_variable(name, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert info.value.name == name


@pytest.mark.parametrize(
    ("url", "verify", "expected"),
    [
        ("rediss://:pw@h:6380/0", False, "rediss://:pw@h:6380/0?ssl_cert_reqs=none"),
        ("rediss://h:6380/0?db=1", False, "rediss://h:6380/0?db=1&ssl_cert_reqs=none"),
        ("rediss://h:6380/0", True, "rediss://h:6380/0"),
        ("redis://h:6379/0", False, "redis://h:6379/0"),
    ],
)
def test_client_url_carries_the_tls_choice(url, verify, expected):
    settings = Settings.from_env({"REDIS_URL": url, "REDIS_TLS_VERIFY": str(verify).lower()})
    assert client_redis_url(settings.redis_url, settings.redis_tls_verify) == expected


# --- logs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("has space", False), ("line\nbreak", False),
     ("", False), (None, False), ("<script>", False)],
)
def test_request_id_is_kept_only_when_safe(given, kept):
    result = logs.clean_request_id(given)
    assert (result == given) is kept
    assert 1 <= len(result) <= 128


def test_json_lines_carry_context_and_fields():
    stream = io.StringIO()
    root_level = logging.getLogger().level
    handler = logs.configure("json", "INFO", stream)
    try:
        with logs.context("req-1", "job-1"):
            logging.getLogger("probe").info("hello %s", "there", extra={"event": "started", "queue": "default"})
        logging.getLogger("probe").warning("outside")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(root_level)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "hello there" and first["level"] == "info" and first["logger"] == "probe"
    assert (first["request_id"], first["job_id"], first["event"], first["queue"]) == ("req-1", "job-1", "started",
                                                                                      "default")
    assert first["ts"].endswith("Z")
    assert "request_id" not in second and second["level"] == "warning"


# --- health -------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_readyz_can_require_a_live_worker(make_client, redis, start_worker):
    client = make_client(READYZ_REQUIRE_WORKER="true")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "redis": "ok", "workers": 0}
    start_worker("--no-scheduler", "--processes", "1")  # one RQ worker (the shipped dyno has 2)
    response = poll(lambda: (r := client.get("/readyz")).status_code == 200 and r, timeout=30)
    assert response, "readyz never became ready with a worker running"
    assert response.get_json() == {"status": "ok", "redis": "ok", "workers": 1}
    # Without the switch, readiness is Redis only.
    plain = make_client()
    assert plain.get("/readyz").get_json() == {"status": "ok", "redis": "ok"}


def worker_check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py"), "--check", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT,
    )


@pytest.mark.integration
@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_worker_check_follows_the_worker(env, redis, start_worker, stop_with):
    result = worker_check(env)
    assert result.returncode == 1 and "no live worker" in result.stderr
    worker = start_worker("--no-scheduler", "--name", f"checked-{stop_with.name}")
    assert poll(lambda: worker_check(env).returncode == 0, timeout=30), worker.log()
    named = worker_check(env, "--name", f"checked-{stop_with.name}")
    assert named.returncode == 0 and "healthy" in named.stderr
    assert worker_check(env, "--name", "someone-else").returncode == 1
    stale = health.check_local_worker(redis, max_age=0)  # any heartbeat is older than zero seconds
    assert not stale.ok and "last heartbeat" in stale.message
    worker.process.send_signal(stop_with)
    worker.process.wait(30)
    # SIGTERM: the worker deregisters. SIGKILL: its key lingers for the worker TTL, but its process is gone.
    result = worker_check(env)
    assert result.returncode == 1, result.stderr
    assert "gone" in result.stderr if stop_with == signal.SIGKILL else "no live worker" in result.stderr


@pytest.mark.integration
def test_worker_check_reports_redis_down(env):
    result = worker_check({**env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 1 and "Redis unavailable" in result.stderr


# --- metrics ------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_metrics_needs_the_token(make_client, redis):
    assert make_client().get("/metrics").status_code == 404  # not served at all without METRICS_TOKEN
    client = make_client(METRICS_TOKEN=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")


def forge(redis, queue: str = "default") -> str:
    """A queue entry naming a function outside the catalogue: the worker must refuse it (ForbiddenJob)."""
    job = make_queues(redis)[queue].enqueue_call(func="os.getcwd", meta={"type": "forged"})
    return job.id


@pytest.mark.integration
def test_metrics_from_real_jobs(make_client, redis, start_worker, page_server):
    client = make_client(METRICS_TOKEN=TOKEN)
    other_process = make_client(METRICS_TOKEN=TOKEN)  # another web process: same numbers, as all come from Redis
    for _ in range(2):
        make_queues(redis)["low"].enqueue_call(func="jobs.wordcount.count_words_at_url", kwargs={"url": "x"})
    worker = start_worker("high", "default", "--no-scheduler", "--processes", "1")
    ok = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": page_server.url("/")}})
    forged = forge(redis)
    assert wait_for_job(client, ok.get_json()["id"])["status"] == "finished", worker.log()
    assert wait_for_job(client, forged)["status"] == "failed", worker.log()
    # The worker records the failure just before it marks the job failed; allow it a moment.
    scrape = poll(lambda: (s := samples(client.get("/metrics", headers=AUTH).get_data(as_text=True)))
                  and s.get(("rq_jobs_failed_total", (("error", "ForbiddenJob"), ("type", "forged")))) and s)
    assert scrape, worker.log()
    assert scrape == samples(other_process.get("/metrics", headers=AUTH).get_data(as_text=True))

    assert scrape[("rq_queue_depth", (("queue", "low"),))] == 2
    assert scrape[("rq_queue_depth", (("queue", "default"),))] == 0
    assert scrape[("rq_registry_jobs", (("queue", "default"), ("registry", "finished")))] == 1
    assert scrape[("rq_registry_jobs", (("queue", "default"), ("registry", "failed")))] == 1
    assert scrape[("rq_registry_jobs", (("queue", "default"), ("registry", "started")))] == 0
    assert scrape[("rq_workers_live", ())] == 1
    assert scrape[("rq_workers", (("state", "idle"),))] + scrape[("rq_workers", (("state", "busy"),))] == 1
    assert scrape[("rq_jobs_submitted_total", (("type", "count_words_at_url"),))] == 1
    words = (("type", "count_words_at_url"),)
    assert scrape[("rq_job_duration_seconds_count", words)] == 1
    assert scrape[("rq_job_duration_seconds_bucket", (("le", "+Inf"), *words))] == 1
    assert 0 < scrape[("rq_job_duration_seconds_sum", words)] < 60
    assert scrape[("rq_job_queue_wait_seconds_count", words)] == 1
    assert scrape[("rq_job_queue_wait_seconds_count", (("type", "forged"),))] == 1
    assert ("rq_job_duration_seconds_count", (("type", "forged"),)) in scrape  # failed attempts are timed too


def test_histogram_buckets_are_cumulative(redis):
    for seconds in (0.01, 0.3, 0.3, 7.0, 5000.0):
        metrics.observe(redis, metrics.DURATION, "demo", seconds)
    scrape = samples(metrics.render(redis, []).decode())
    bucket = {le: scrape[("rq_job_duration_seconds_bucket", (("le", le), ("type", "demo")))]
              for le in ("0.05", "0.25", "0.5", "5.0", "10.0", "600.0", "+Inf")}
    assert bucket == {"0.05": 1, "0.25": 1, "0.5": 3, "5.0": 3, "10.0": 4, "600.0": 4, "+Inf": 5}
    assert scrape[("rq_job_duration_seconds_count", (("type", "demo"),))] == 5
    assert scrape[("rq_job_duration_seconds_sum", (("type", "demo"),))] == pytest.approx(5007.61)


# --- job event logs -----------------------------------------------------------------------------------------


def event_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "event" in record:
            lines.append(record)
    return lines


@pytest.mark.integration
def test_job_events_as_json_lines_with_the_request_id(client, env, redis, start_worker, page_server, caplog):
    worker = start_worker("--no-scheduler", extra_env={"LOG_FORMAT": "json"})
    refused = f"http://127.0.0.1:{free_port()}/"  # nothing listens there: a transient failure, retried
    with caplog.at_level(logging.INFO, logger="engine.events"):
        ok = client.post("/api/jobs", headers={"X-Request-ID": "req-ok-1"},
                         json={"type": "count_words_at_url", "params": {"url": page_server.url("/")}})
        retry = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": refused}})
    assert ok.headers["X-Request-ID"] == "req-ok-1"
    generated = retry.headers["X-Request-ID"]
    assert len(generated) == 32 and generated != "req-ok-1"
    ok_id, retry_id, forged_id = ok.get_json()["id"], retry.get_json()["id"], forge(redis)
    assert CatalogJob.fetch(ok_id, connection=redis, serializer=SERIALIZER).meta["request_id"] == "req-ok-1"
    enqueued = [r for r in caplog.records if getattr(r, "event", None) == "enqueued"]
    assert [(r.job_id, r.request_id) for r in enqueued] == [(ok_id, "req-ok-1"), (retry_id, generated)]

    def seen() -> list[tuple[str, str]]:
        return [(e["event"], e["job_id"]) for e in event_lines(worker.log())]

    wanted = {("started", ok_id), ("finished", ok_id), ("retried", retry_id), ("failed", forged_id)}
    assert poll(lambda: wanted <= set(seen())), worker.log()
    by_key = {(e["event"], e["job_id"]): e for e in event_lines(worker.log())}
    assert by_key[("started", ok_id)]["request_id"] == "req-ok-1"
    assert by_key[("started", ok_id)]["job_type"] == "count_words_at_url"
    assert by_key[("started", ok_id)]["queue"] == "default"
    assert by_key[("finished", ok_id)]["request_id"] == "req-ok-1"
    assert by_key[("finished", ok_id)]["duration_s"] >= 0
    assert by_key[("retried", retry_id)]["request_id"] == generated
    assert by_key[("retried", retry_id)]["error_class"]  # the transient fetch error's class
    retries = len(Settings.from_env(env).retry_intervals)
    assert by_key[("retried", retry_id)]["retries_left"] == retries - 1  # one spent now (no scheduler: no more)
    assert by_key[("failed", forged_id)]["error_class"] == "ForbiddenJob"
    assert by_key[("failed", forged_id)]["level"] == "error"
    # RQ's own lines inside the job carry the job id too, and every line is JSON.
    assert all(line.startswith("{") for line in worker.log().splitlines() if line.strip())


def test_abandoned_job_is_logged_and_counted(redis, settings, caplog):
    queue = make_queues(redis)["default"]
    job = queue.enqueue_call(func="jobs.wordcount.count_words_at_url", kwargs={"url": "x"},
                             meta={"type": "count_words_at_url", "request_id": "req-gone"})
    for retries_left, expected in ((1, "retried"), (0, "failed")):
        job.retries_left = retries_left
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="engine.events"):
            # What StartedJobRegistry.cleanup calls for a job whose worker died mid-run.
            events.on_failure(job, AbandonedJobError, AbandonedJobError(), None)
        assert [(r.event, r.error_class, r.request_id) for r in caplog.records if r.name == "engine.events"] == [
            ("abandoned", "AbandonedJobError", "req-gone"),
            (expected, "AbandonedJobError", "req-gone"),
        ]
    scrape = samples(metrics.render(redis, []).decode())
    labels = (("error", "AbandonedJobError"), ("type", "count_words_at_url"))
    assert scrape[("rq_job_retries_total", labels)] == 1
    assert scrape[("rq_jobs_failed_total", labels)] == 1


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/readyz", "/metrics"])
def test_probes_answer_503_when_redis_is_down(make_client, path):
    client = make_client(REDIS_URL="redis://127.0.0.1:1/0", METRICS_TOKEN=TOKEN, READYZ_REQUIRE_WORKER="true")
    response = client.get(path, headers=AUTH)
    assert response.status_code == 503
    assert response.headers["X-Request-ID"]
    assert client.get("/healthz").status_code == 200  # liveness does not depend on Redis


@pytest.mark.integration
def test_abandoned_job_through_rq_registry_cleanup(redis, settings, caplog, request):
    """A worker dies mid-job; RQ's started-registry cleanup calls the worker's handlers with AbandonedJobError."""
    from worker import build_worker

    word_count = catalog.get("count_words_at_url")
    job = fetch_job(redis, enqueue(redis, word_count, word_count.validate({"url": "http://127.0.0.1:9/"}), settings,
                                   queue="default")["id"])
    doomed = build_worker(settings, ("default",), name="doomed")
    request.addfinalizer(doomed.connection.close)
    doomed.register_birth()
    doomed.prepare_execution(job)  # what a worker records before it runs a job...
    doomed.prepare_job_execution(job)  # ...and then it is SIGKILLed, so nothing more is written
    registry = make_queues(redis)["default"].started_job_registry
    assert job.id in registry.get_job_ids(cleanup=False)
    with caplog.at_level(logging.INFO, logger="engine.events"):
        # Cleanup as a later worker's maintenance runs it, once the entry's heartbeat has lapsed.
        registry.cleanup(timestamp=time.time() + 3600, exception_handlers=doomed.handlers)
    lines = [(r.event, r.job_id, r.error_class) for r in caplog.records if r.name == "engine.events"]
    assert lines == [("abandoned", job.id, "AbandonedJobError"), ("retried", job.id, "AbandonedJobError")]
    assert job_status(fetch_job(redis, job.id)) in {"scheduled", "queued"}
    labels = (("error", "AbandonedJobError"), ("type", "count_words_at_url"))
    assert samples(metrics.render(redis, []).decode())[("rq_job_retries_total", labels)] == 1
