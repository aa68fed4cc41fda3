"""Periodic jobs: schedule validation, slots, and the clock's leader election and once-per-slot enqueue."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from clock import FIRED_PREFIX, Clock
from engine import schedule
from engine.connection import connect
from engine.enqueue import RECENT_KEY
from engine.enqueue_script import NotReplicated
from engine.queues import SERIALIZER, CatalogJob
from engine.schedule import LEADER_KEY, Periodic, ScheduleError
from engine.settings import PROJECT_ROOT

URL = {"url": "https://example.com/"}


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        (Periodic("a", "count_words_at_url", URL), "exactly one"),
        (Periodic("a", "count_words_at_url", URL, every=60, cron="* * * * *"), "exactly one"),
        (Periodic("a", "count_words_at_url", URL, every=0), "every"),
        (Periodic("a", "count_words_at_url", URL, every=True), "every"),
        (Periodic("a", "count_words_at_url", URL, cron="every hour"), "cron"),
        (Periodic("a", "nope", URL, every=60), "unknown job type"),
        (Periodic("a", "count_words_at_url", {"url": "ftp://x"}, every=60), "params.url"),
        (Periodic("a", "count_words_at_url", URL, every=60, priority="urgent"), "priority"),
        (Periodic("a b", "count_words_at_url", URL, every=60), "name"),
        (Periodic("a", "aggregate_word_counts", {"batch_id": "x", "item_ids": ["y"]}, every=60), "unknown job type"),
    ],
)
def test_invalid_entries_are_refused_naming_the_problem(entry, needle):
    with pytest.raises(ScheduleError, match="schedule entry") as info:
        entry.validated()
    assert needle in str(info.value)


def test_duplicate_names_are_refused():
    entry = Periodic("same", "count_words_at_url", URL, every=60)
    with pytest.raises(ScheduleError, match="unique"):
        schedule.load(declared=(entry, entry))


def test_schedule_file_is_read_and_validated(tmp_path):
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps([{"name": "hourly", "type": "count_words_at_url", "params": URL, "every": 3600}]))
    [entry] = schedule.load(str(path), declared=())
    assert entry == Periodic("hourly", "count_words_at_url", {**URL, "top": 20}, every=3600)


@pytest.mark.parametrize(
    "content", ["not json", "{}", "[1]", '[{"name": "x"}]', '[{"name": "x", "type": "count_words_at_url", "x": 1}]']
)
def test_bad_schedule_files_are_refused(tmp_path, content):
    path = tmp_path / "schedule.json"
    path.write_text(content)
    with pytest.raises(ScheduleError, match="SCHEDULE_FILE"):
        schedule.load(str(path), declared=())


def test_missing_schedule_file_is_refused(tmp_path):
    with pytest.raises(ScheduleError, match="SCHEDULE_FILE"):
        schedule.load(str(tmp_path / "absent.json"), declared=())


def test_slots_for_every_and_cron():
    now = datetime(2030, 5, 1, 10, 47, 12, tzinfo=UTC)
    hourly = Periodic("h", "count_words_at_url", URL, every=3600)
    assert hourly.slot(now) == datetime(2030, 5, 1, 10, 0, tzinfo=UTC)
    assert hourly.period(now) == timedelta(hours=1)
    nightly = Periodic("n", "count_words_at_url", URL, cron="15 3 * * *")
    assert nightly.slot(now) == datetime(2030, 5, 1, 3, 15, tzinfo=UTC)
    assert nightly.period(now) == timedelta(days=1)


def test_only_the_leader_enqueues_and_each_slot_once(settings, redis):
    entries = schedule.load(declared=(Periodic("hourly", "count_words_at_url", URL, every=3600),))
    first = Clock(connect(settings), settings, entries, name="first")
    second = Clock(connect(settings), settings, entries, name="second")
    now = datetime(2030, 5, 1, 10, 47, tzinfo=UTC)
    assert len(first.tick(now)) == 1
    assert second.tick(now) == [] and not second.leading
    assert first.tick(now + timedelta(minutes=5)) == []  # same slot: already ran
    redis.delete(LEADER_KEY)  # the leader's lease lapsed: the other takes over, but the slot still ran once
    assert second.tick(now + timedelta(minutes=6)) == [] and second.leading
    [job_id] = second.tick(now + timedelta(hours=1))
    job = CatalogJob.fetch(job_id, connection=redis, serializer=SERIALIZER)
    assert job.meta["schedule"] == "hourly" and job.meta["slot"] == "2030-05-01T11:00:00Z"
    assert job.kwargs == {**URL, "top": 20}
    assert len(redis.keys(FIRED_PREFIX + "*")) == 2


def test_a_slot_no_replica_confirmed_is_tried_again_on_the_next_tick(settings, redis):
    entries = schedule.load(declared=(Periodic("hourly", "count_words_at_url", URL, every=3600),))
    now = datetime(2030, 5, 1, 10, 47, tzinfo=UTC)
    # This Redis has no replica: asking for one makes every enqueue time out unconfirmed, and be withdrawn.
    unconfirmed = dataclasses.replace(settings, redis_wait_replicas=1, redis_wait_timeout_ms=10)
    with pytest.raises(NotReplicated):
        Clock(connect(unconfirmed), unconfirmed, entries, name="first").tick(now)
    assert not redis.keys(FIRED_PREFIX + "*") and not redis.zcard(RECENT_KEY)
    assert not redis.lrange("rq:queue:default", 0, -1) and not redis.keys("rq:job:*")
    assert len(Clock(connect(settings), settings, entries, name="first").tick(now + timedelta(seconds=1))) == 1


def until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def start_clock(env: dict, path, log_path) -> subprocess.Popen:
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "clock.py")], cwd=PROJECT_ROOT,
            env={**os.environ, **env, "SCHEDULE_FILE": str(path)}, stdout=log, stderr=subprocess.STDOUT,
        )


@pytest.mark.integration
def test_two_clock_processes_run_each_slot_once(env, redis, worker, tmp_path, page_server):
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps([{"name": "tick", "type": "count_words_at_url",
                                 "params": {"url": page_server.url("/")}, "every": 1}]))
    clocks = [start_clock(env, path, tmp_path / f"clock{n}.log") for n in range(2)]
    try:
        assert until(lambda: redis.get(LEADER_KEY)), "no clock took the lead"
        leader = redis.get(LEADER_KEY).decode()
        time.sleep(2.5)  # a few one-second slots
        logs = [(tmp_path / f"clock{n}.log").read_text() for n in range(2)]
        assert sum("is the leader" in log for log in logs) == 1, logs
        # Hand over: the leader stops (releasing its lease); the other takes over and the slots go on.
        leading = next(n for n, log in enumerate(logs) if "is the leader" in log)
        clocks[leading].send_signal(signal.SIGTERM)
        assert clocks[leading].wait(15) == 0
        assert until(lambda: redis.get(LEADER_KEY) not in (None, leader.encode())), "nobody took over"
        successor = redis.get(LEADER_KEY).decode()
        assert until(lambda: successor.encode() in redis.mget(redis.keys(FIRED_PREFIX + "*"))), "no slot after"
        time.sleep(1)
    finally:
        for clock in clocks:
            clock.send_signal(signal.SIGTERM)
            clock.wait(15)
    ids = [i.decode() for i in redis.zrange(RECENT_KEY, 0, -1)]
    jobs = [j for j in CatalogJob.fetch_many(ids, connection=redis, serializer=SERIALIZER) if j is not None]
    slots = [job.meta["slot"] for job in jobs if job.meta.get("schedule") == "tick"]
    assert 3 <= len(slots) <= 12, slots  # about one a second for ~5 s, the hand-over included
    assert len(set(slots)) == len(slots), slots  # never twice for one slot
    deadline = time.monotonic() + 30
    while not all(job.get_status() == "finished" for job in jobs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(job.get_status() == "finished" for job in jobs), worker.log()


def test_clock_check_reports_a_bad_schedule(env, tmp_path):
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps([{"name": "x", "type": "count_words_at_url", "params": {}, "every": 60}]))
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "clock.py"), "--check"], cwd=PROJECT_ROOT,
        env={**os.environ, **env, "SCHEDULE_FILE": str(path)}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "schedule entry 'x'" in result.stderr and "params.url" in result.stderr
