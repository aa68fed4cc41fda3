"""A supervisor for N worker processes: restarts them when they exit and recovers the jobs a dead one held.

Each child is a StackWorker process (``python worker.py --child``). A child that crashes (segfault,
``os._exit``, OOM kill), recycles itself (memory limit, a hung job, ``--max-jobs``) or is killed is replaced
at once. Its jobs are recovered at once by the same reaper that the beacons run (engine.recovery), told
now that the process is gone instead of waiting WORKER_LOST_AFTER for its beacon to lapse.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq.worker import SimpleWorker

from engine.recovery import Reaper
from engine.worker import RECYCLE

log = logging.getLogger("worker.supervisor")

_POLL = 0.1  # seconds between looks at the children; cheap (waitpid with WNOHANG)
_QUICK_DEATH = 2.0  # a child that dies sooner than this is crash-looping (bad config, Redis gone): back off
_MAX_BACKOFF = 30.0


@dataclass
class Child:
    """One supervised worker process."""

    slot: int
    name: str
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` when the parent process dies, so a killed parent leaves no orphans behind.

    A parent that died before the call is caught by the caller's own parent-pid check."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent-pid check alone notices
        return


class Supervisor:
    """Starts ``processes`` children with ``command(slot, name)`` and keeps them running until stopped."""

    def __init__(
        self,
        command: Callable[[int, str], list[str]],
        processes: int,
        connection: Redis,
        base_name: str,
        burst: bool = False,
        env: dict[str, str] | None = None,
        *,
        shutdown_grace: float,
    ):
        self.command = command
        self.processes = processes
        self.connection = connection
        self.base_name = base_name
        self.burst = burst
        self.env = env
        self.shutdown_grace = shutdown_grace
        self.children: list[Child] = []
        self.stopping = False
        self.stop_asked_at: float | None = None
        self.parent_pid = os.getppid()
        self._generation = 0
        self._backoff: dict[int, float] = {}  # slot → seconds to wait before the next restart
        self._restart_at: dict[int, float] = {}

    def start_child(self, slot: int) -> Child:
        self._generation += 1
        name = f"{self.base_name}.{slot}.{self._generation}"
        process = subprocess.Popen(self.command(slot, name), env=self.env)
        log.info("supervisor: started worker %s (pid %d)", name, process.pid)
        return Child(slot, name, process)

    def request_stop(self, signum: int, frame: Any) -> None:
        """First signal: warm stop (children finish their jobs); a second one is passed on for a cold stop."""
        self.stopping = True
        if self.stop_asked_at is None:
            self.stop_asked_at = time.monotonic()
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Supervise until stopped (or, in burst mode, until every child is done); returns an exit code."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        die_with_parent(signal.SIGTERM)  # started by a test, honcho or a shell: a warm stop when it dies
        self.children = [self.start_child(slot) for slot in range(self.processes)]
        while self.children or (self._restart_at and not self.stopping):
            time.sleep(_POLL)
            if not self.stopping and os.getppid() != self.parent_pid:
                log.warning("supervisor: parent process %d is gone; stopping", self.parent_pid)
                self.request_stop(signal.SIGTERM, None)
            self._kill_after_grace()
            for child in list(self.children):
                code = child.process.poll()
                if code is None:
                    continue
                self.children.remove(child)
                self.reap(child, code)
                if not self.stopping and (not self.burst or code != 0):
                    self._schedule_restart(child)
            self._restart_due()
        return 0

    def _kill_after_grace(self) -> None:
        """A child still running past the grace (+3 s to re-queue its jobs) is stuck, maybe on an unreachable
        Redis: kill it, so a stop always ends within SHUTDOWN_GRACE + 5 s; the reaper recovers its jobs."""
        if self.stop_asked_at is None or time.monotonic() - self.stop_asked_at < self.shutdown_grace + 3:
            return
        for child in self.children:
            if child.process.poll() is None:
                log.warning("supervisor: worker %s did not stop in time; killing it", child.name)
                child.process.kill()

    def _schedule_restart(self, child: Child) -> None:
        """Restart at once, unless the slot is crash-looping: then wait 1, 2, 4 … 30 s."""
        if time.monotonic() - child.started < _QUICK_DEATH:
            delay = min(_MAX_BACKOFF, self._backoff.get(child.slot, 0.5) * 2)
        else:
            delay = 0.0
        self._backoff[child.slot] = delay or 0.5
        if delay:
            log.warning("supervisor: worker slot %d dies at start; next try in %.0f s", child.slot, delay)
        self._restart_at[child.slot] = time.monotonic() + delay

    def _restart_due(self) -> None:
        for slot, when in list(self._restart_at.items()):
            if self.stopping:
                self._restart_at.clear()
            elif time.monotonic() >= when:
                del self._restart_at[slot]
                self.children.append(self.start_child(slot))

    def reap(self, child: Child, code: int) -> None:
        """Log why a child ended and recover any job it still held."""
        if code == RECYCLE:
            log.info("supervisor: worker %s recycled itself", child.name)
        elif code != 0:
            log.warning("supervisor: worker %s exited with %s", child.name, code)
        if self.stopping and code == 0:
            return  # a warm stop: it re-queued what it could not finish itself
        try:
            counts = Reaper(self.connection).reap_now(child.name)
            dead = SimpleWorker.find_by_key(f"{SimpleWorker.redis_worker_namespace_prefix}{child.name}",
                                            connection=self.connection)
            if dead is not None:
                dead.register_death()  # so rq info and the dashboard stop listing it at once
        except RedisError as exc:  # Redis down: the beacons' reaper recovers them once it is back
            log.error("supervisor: could not recover jobs of %s: %s", child.name, exc)
            return
        recovered = counts.get("requeued", 0) + counts.get("failed", 0)
        if recovered:
            log.warning("supervisor: recovered %d job(s) that worker %s was running", recovered, child.name)
