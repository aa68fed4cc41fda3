"""Worker liveness from RQ's own records: the worker registry and each worker's heartbeat."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from rq import Worker
from rq.defaults import DEFAULT_WORKER_TTL
from rq.utils import now

# RQ renews a worker's key for its TTL + 60 s; an idle worker beats only when its blocking dequeue times out.
HEARTBEAT_MAX_AGE = DEFAULT_WORKER_TTL + 60


def live_workers(connection: Redis) -> list[Worker]:
    """Workers whose RQ key still exists: RQ lets it expire when heartbeats stop for the worker TTL."""
    return Worker.all(connection=connection)


@dataclass(frozen=True)
class Liveness:
    """The outcome of a worker health check, with a line for the operator."""

    ok: bool
    message: str


def _process_alive(pid: int) -> bool:
    """Whether the process runs; a zombie (dead, not yet reaped by its new parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): the kill probe is all we have


def _age(heartbeat: datetime | None) -> float | None:
    return (now() - heartbeat).total_seconds() if heartbeat else None


def check_local_worker(
    connection: Redis, name: str | None = None, max_age: float = HEARTBEAT_MAX_AGE, hostname: str | None = None
) -> Liveness:
    """Healthy when a worker of this host (or called ``name``) has a heartbeat under ``max_age`` s old and,
    being on this host, its process is still running."""
    hostname = hostname or socket.gethostname()
    candidates = [
        # A supervised worker's processes are named "<name>.<slot>.<generation>" (engine/supervisor.py).
        w for w in live_workers(connection)
        if (w.name == name or w.name.startswith(f"{name}.") if name else w.hostname == hostname)
    ]
    if not candidates:
        who = f"named {name!r}" if name else f"on host {hostname!r}"
        return Liveness(False, f"no live worker {who} is registered in Redis")
    problems = []
    for worker in candidates:
        age = _age(worker.last_heartbeat)
        if age is None or age > max_age:
            problems.append(f"{worker.name}: last heartbeat {age if age is None else round(age)} s ago")
        elif worker.hostname == hostname and worker.pid and not _process_alive(worker.pid):
            problems.append(f"{worker.name}: process {worker.pid} is gone")
        else:
            return Liveness(True, f"worker {worker.name} (pid {worker.pid}) is {worker.get_state()}, "
                                  f"heartbeat {age:.0f} s ago")
    return Liveness(False, "; ".join(problems))
