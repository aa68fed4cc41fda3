"""The CLI as a real process against the session's Redis and real workers."""

import io
import json
import os
import subprocess
import sys

import pytest

import cli
from cli import ProgressLine
from engine.settings import PROJECT_ROOT
from tests.conftest import wait_for_job

BINARY = {"Content-Type": "application/octet-stream"}


def run(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=PROJECT_ROOT, env={**os.environ, **env},
        capture_output=True, text=True, timeout=timeout,
    )


def run_json(env: dict, *args: str) -> tuple[int, dict]:
    result = run(env, *args, "--json")
    return result.returncode, json.loads(result.stdout)


@pytest.mark.integration
def test_submit_wait_json_gives_the_finished_job(env, worker, page_server):
    code, job = run_json(env, "submit", page_server.url("/"), "--top", "2", "--wait")
    assert code == 0, worker.log()
    assert job["status"] == "finished"
    assert job["result"]["total_words"] == 9
    assert job["result"]["top_words"] == [{"word": "the", "count": 3}, {"word": "cat", "count": 2}]


@pytest.mark.integration
def test_submit_wait_is_readable_and_shows_progress(env, worker, page_server):
    result = run(env, "submit", page_server.url("/"), "--wait")
    assert result.returncode == 0, (result.stderr, worker.log())
    assert "FINISHED" in result.stdout
    assert "words:    9 total, 6 unique" in result.stdout
    assert "top:      the (3), cat (2)" in result.stdout
    assert "waiting" in result.stderr
    assert "finished: counting" in result.stderr.splitlines()  # progress lines when not on a terminal


@pytest.mark.integration
def test_wait_on_a_failing_job_exits_1_with_its_error(env, worker, page_server):
    page_server.add("/binary", body=b"\x00", headers=BINARY)
    result = run(env, "submit", page_server.url("/binary"), "--wait")
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "UnsupportedContentType" in result.stdout


def test_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    line = ProgressLine(stream)
    line.update({"status": "started", "progress": {"stage": "downloading", "bytes": 5000, "total": 10000}})
    line.update({"status": "started", "progress": {"stage": "downloading", "bytes": 10000, "total": 10000}})
    line.close()
    text = stream.getvalue()
    assert "\r\x1b[2K[###############---------------]  50% downloading 5.0 kB / 10.0 kB" in text
    assert "[##############################] 100%" in text
    assert text.endswith("\n")


def test_submit_generic_params_priority_and_delay(env, redis):
    code, job = run_json(env, "submit", "--type", "count_words_at_url", "--param", "url=https://example.com/",
                         "--param", "top=3", "--priority", "high")
    assert code == 0
    assert job["params"] == {"url": "https://example.com/", "top": 3}
    assert redis.lrange("rq:queue:high", 0, -1) == [job["id"].encode()]
    code, later = run_json(env, "submit", "https://example.com/", "--delay", "600")
    assert (code, later["status"]) == (0, "scheduled")


def test_status_cancel_and_list(env, redis):
    _, job = run_json(env, "submit", "https://example.com/")
    code, shown = run_json(env, "status", job["id"])
    assert (code, shown["status"]) == (0, "queued")
    human = run(env, "status", job["id"])
    assert human.stdout.startswith(f"{job['id']}  count_words_at_url  QUEUED")
    code, canceled = run_json(env, "cancel", job["id"])
    assert (code, canceled["status"]) == (0, "canceled")
    code, error = run_json(env, "cancel", job["id"])
    assert (code, error["error"]["code"]) == (1, "not_cancelable")
    code, listing = run_json(env, "list", "--status", "canceled")
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]


def test_idempotency_key(env, redis):
    _, first = run_json(env, "submit", "https://example.com/", "--idempotency-key", "k1")
    _, again = run_json(env, "submit", "https://example.com/", "--idempotency-key", "k1")
    assert first["id"] == again["id"]
    code, error = run_json(env, "submit", "https://example.org/", "--idempotency-key", "k1")
    assert (code, error["error"]["code"]) == (1, "idempotency_conflict")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("submit",), 2, "params.url"),
        (("submit", "ftp://example.com/"), 2, "params.url"),
        (("submit", "https://example.com/", "--delay", "-1"), 2, "delay_seconds"),
        (("submit", "https://example.com/", "--at", "2000-01-01T00:00:00Z"), 2, "past"),
        (("submit", "--type", "nope"), 2, "unknown job type"),
        (("submit", "--param", "novalue"), 2, "NAME=VALUE"),
        (("status", "no-such-job"), 1, "expired or never existed"),
        (("cancel", "no-such-job"), 1, "expired or never existed"),
    ],
)
def test_errors_are_readable_with_exit_status(env, redis, monkeypatch, capsys, args, code, needle):
    for name, value in env.items():  # in-process for speed; the process-level paths are tested above
        monkeypatch.setenv(name, value)
    assert cli.main(list(args)) == code
    captured = capsys.readouterr()
    assert needle in captured.err and "Traceback" not in captured.err
    assert cli.main([*args, "--json"]) == code
    assert needle in json.loads(capsys.readouterr().out)["error"]["message"]


def test_redis_down_exits_3(env, tmp_path):
    result = run({**env, "REDIS_URL": f"unix://{tmp_path}/nobody.sock"}, "stats")
    assert result.returncode == 3 and "Redis is unavailable" in result.stderr


@pytest.mark.integration
def test_requeue_failed_by_error_type_and_stats(env, redis, start_worker, page_server, client):
    page_server.add("/binary", body=b"\x00", headers=BINARY)
    failed = client.post("/api/jobs", json={"type": "count_words_at_url",
                                            "params": {"url": page_server.url("/binary")}}).get_json()["id"]
    worker = start_worker("--burst", "--no-scheduler")
    assert worker.process.wait(60) == 0
    assert wait_for_job(client, failed)["status"] == "failed"
    code, stats = run_json(env, "stats")
    assert code == 0 and stats["queues"]["default"]["failed"] == 1
    assert run_json(env, "requeue-failed", "--error-type", "FetchTimeout")[1] == {"requeued": []}
    code, requeued = run_json(env, "requeue-failed", "--queue", "default", "--error-type", "UnsupportedContentType")
    assert (code, requeued) == (0, {"requeued": [failed]})
    assert client.get(f"/api/jobs/{failed}").get_json()["status"] == "queued"
    live = start_worker("--name", "cli-test-worker")
    assert wait_for_job(client, failed)["status"] == "failed", live.log()  # it ran again, and failed again
    human = run(env, "stats")
    assert human.returncode == 0
    assert "default" in human.stdout and "cli-test-worker" in human.stdout


@pytest.mark.integration
def test_purge_old_jobs_by_state(env, redis, start_worker, page_server, client):
    page_server.add("/binary", body=b"\x00", headers=BINARY)
    ids = [client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": page_server.url(path)}})
           .get_json()["id"] for path in ("/", "/binary")]
    worker = start_worker("--burst", "--no-scheduler")
    assert worker.process.wait(60) == 0
    finished, failed = ids
    assert run_json(env, "purge", "--older-than", "1", "--status", "failed")[1]["purged"] == []  # too recent
    code, dry = run_json(env, "purge", "--older-than", "0", "--status", "failed", "--dry-run")
    assert (code, dry) == (0, {"purged": [failed], "dry_run": True})
    assert client.get(f"/api/jobs/{failed}").status_code == 200
    code, done = run_json(env, "purge", "--older-than", "0", "--status", "failed")
    assert (code, done["purged"]) == (0, [failed])
    assert client.get(f"/api/jobs/{failed}").status_code == 404
    assert client.get(f"/api/jobs/{finished}").get_json()["status"] == "finished"
    assert [job["id"] for job in client.get("/api/jobs").get_json()["jobs"]] == [finished]
