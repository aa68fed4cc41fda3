"""RQ's own ``rq worker`` runs our StackWorker when given our classes: a catalogued job runs, a forged one does not."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from engine.settings import PROJECT_ROOT
from tests.conftest import wait_for_job
from tests.processes import ProcessGroup, venv_env

pytestmark = pytest.mark.integration

# The README shows this exact command; keep them the same.
COMMAND = ("rq worker -c engine.rq_config -w engine.worker.StackWorker -j engine.queues.CatalogJob"
           " -S rq.serializers.JSONSerializer --with-scheduler high default low")


def test_readme_shows_the_command():
    assert COMMAND in (PROJECT_ROOT / "README.md").read_text()


def test_rq_worker_with_our_classes_runs_jobs_and_refuses_forged_ones(client, redis, env, page_server,
                                                                      tmp_path: Path):
    rq = str(Path(sys.executable).parent / "rq")
    worker = ProcessGroup([rq, *shlex.split(COMMAND)[1:]], venv_env(**env), tmp_path / "rq-worker.log")
    try:
        ok = client.post("/api/jobs", json={"type": "count_words_at_url", "params": {"url": page_server.url("/")}})
        marker = tmp_path / "pwned"
        forged = Queue("default", connection=redis, serializer=JSONSerializer).enqueue_call(
            func="os.system", args=[f"touch {marker}"])
        done = wait_for_job(client, ok.get_json()["id"], timeout=60)
        assert done["status"] == "finished", worker.log()
        refused = wait_for_job(client, forged.id, timeout=60)
        assert refused["status"] == "failed", worker.log()
        assert refused["error"]["type"] == "ForbiddenJob"
        assert not marker.exists()
        assert "Traceback" not in worker.log()  # an expected failure is one line, not a traceback
        assert redis.keys("stack:worker:alive:*"), "the beacon runs under rq worker too"
    finally:
        worker.stop()
