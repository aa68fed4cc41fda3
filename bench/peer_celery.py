"""Celery's side of ``make bench``: an app with its Redis broker and Redis result backend on REDIS_URL, and the jobs.

Run by ``python -m celery -A bench.peer_celery worker`` (bench/peers.py); it imports only what Celery needs.
JSON everywhere, as in our stack; everything else is Celery's default.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready

from bench.peer_jobs import get_page

app = Celery("bench", broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True)


@worker_ready.connect
def _ready(**_: object) -> None:
    """Tell the bench this worker is up (Celery logs its own "ready" only at INFO, not its default WARNING)."""
    print("bench: worker ready", flush=True)  # noqa: T201 - Celery logs a worker's stdout


@app.task(name="noop")
def noop() -> None:
    """Do nothing; the (empty) result is stored."""


@app.task(name="page")
def page(url: str) -> int:
    """GET ``url`` and read the body; the status code is stored."""
    return get_page(url)


def send(job: str, args: list[str], n: int) -> list[str]:
    """Queue ``n`` messages for ``job``; their result keys."""
    task = {"noop": noop, "page": page}[job]
    return [app.backend.get_key_for_task(task.delay(*args).id).decode() for _ in range(n)]
