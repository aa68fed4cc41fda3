"""Dramatiq's side of ``make bench``: its Redis broker and Results middleware on REDIS_URL, and the two jobs.

Run by ``python -m dramatiq bench.peer_dramatiq`` (bench/peers.py); it imports only what Dramatiq needs, so
its processes' memory and start-up are Dramatiq's own.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

from bench.peer_jobs import get_page

broker = RedisBroker(url=os.environ["REDIS_URL"])
backend = RedisBackend(url=os.environ["REDIS_URL"])
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True)
def noop() -> None:
    """Do nothing; the (empty) result is stored."""


@dramatiq.actor(store_results=True)
def page(url: str) -> int:
    """GET ``url`` and read the body; the status code is stored."""
    return get_page(url)


def send(job: str, args: list[str], n: int) -> list[str]:
    """Queue ``n`` messages for ``job``; their result keys."""
    actor = {"noop": noop, "page": page}[job]
    return [backend.build_message_key(actor.send(*args)) for _ in range(n)]
