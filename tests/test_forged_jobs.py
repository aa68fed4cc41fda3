"""Forged queue entries never run: not a pickled payload, not a JSON job naming a function outside the catalogue."""

import pickle

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from tests import forged_callback
from tests.conftest import wait_for_job

pytestmark = pytest.mark.integration


class Evil:
    """Unpickling this runs a shell command: the classic pickle attack."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_json_job_naming_os_system_is_refused(client, redis, worker, tmp_path, page_server):
    marker = tmp_path / "pwned"
    forged = Queue("default", connection=redis, serializer=JSONSerializer).enqueue_call(
        func="os.system", args=[f"touch {marker}"]
    )
    job = wait_for_job(client, forged.id)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "ForbiddenJob"
    assert "'os.system' is not in the job catalogue" in job["error"]["message"]
    assert not marker.exists()
    assert_worker_still_serves(client, worker, page_server)


def test_pickled_payload_is_never_unpickled(client, redis, worker, tmp_path, page_server):
    marker = tmp_path / "pwned"
    # A real RQ entry made with the pickle serializer, whose payload runs a command when unpickled.
    forged = Queue("default", connection=redis, serializer=JSONSerializer).enqueue_call(func="os.getcwd")
    redis.hset(forged.key, "data", pickle.dumps(Evil(marker)))
    job = wait_for_job(client, forged.id)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "ForbiddenJob"
    assert "not valid JSON" in job["error"]["message"]
    assert not marker.exists()
    assert_worker_still_serves(client, worker, page_server)


@pytest.mark.parametrize(("path", "callback", "status"), [
    ("/", "success_callback_name", "finished"),
    ("/missing", "failure_callback_name", "failed"),
])
def test_forged_callback_is_never_called(client, redis, start_worker, tmp_path, page_server, path, callback, status):
    marker = tmp_path / "pwned"
    response = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": page_server.url(path)}})
    # The queued entry is rewritten to name a callback that leaves the marker; RQ would import and call it when
    # the job ends. No worker runs yet, so the rewrite is in place before the job is claimed.
    redis.hset(f"rq:job:{response.get_json()['id']}", callback, f"{forged_callback.__name__}.leave_marker")
    worker = start_worker(extra_env={forged_callback.MARKER_ENV: str(marker)})
    job = wait_for_job(client, response.get_json()["id"])
    assert job["status"] == status, worker.log()
    assert not marker.exists()
    assert worker.process.poll() is None, worker.log()


def assert_worker_still_serves(client, worker, page_server):
    assert worker.process.poll() is None, worker.log()
    response = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": page_server.url("/")}})
    assert wait_for_job(client, response.get_json()["id"])["status"] == "finished"
