"""Job timeouts for threads: one shared watchdog thread raises the timeout exception in the job's thread.

SIGALRM (RQ's default death penalty) only reaches the main thread, and RQ's TimerDeathPenalty starts one OS
thread per job, which cost more than a no-op job itself (bench/profile.py). So all job threads share one.
"""

from __future__ import annotations

import ctypes
import heapq
import threading
import time
from dataclasses import dataclass, field


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Raise ``exc_type`` asynchronously in the thread ``thread_id``; True if it was delivered."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))
    if done > 1:  # more than one thread state matched: undo, as the C API documents
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
    return done == 1


@dataclass(order=True)
class _Alarm:
    deadline: float
    thread_id: int = field(compare=False)
    exc_type: type[BaseException] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Watchdog:
    """One daemon thread that raises timeout exceptions in job threads when their deadline passes.

    RQ's TimerDeathPenalty starts a new threading.Timer (an OS thread) per job; the profile showed that start
    costing more than the rest of a no-op job (bench/profile.py), so all jobs share this one thread.
    """

    def __init__(self) -> None:
        self._alarms: list[_Alarm] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._cancelled = 0

    def arm(self, seconds: float, exc_type: type[BaseException]) -> _Alarm:
        """Raise ``exc_type`` in the calling thread after ``seconds`` unless cancelled first."""
        alarm = _Alarm(time.monotonic() + seconds, threading.get_ident(), exc_type)
        with self._changed:
            heapq.heappush(self._alarms, alarm)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="job-watchdog", daemon=True)
                self._thread.start()
            if self._alarms[0] is alarm:  # only an earlier deadline needs the watchdog awake sooner
                self._changed.notify()
        return alarm

    def cancel(self, alarm: _Alarm) -> None:
        with self._changed:  # under the lock, so a cancelled alarm can never fire afterwards
            alarm.cancelled = True
            self._cancelled += 1
            if self._cancelled > 1000 and self._cancelled * 2 > len(self._alarms):  # keep the heap small
                self._alarms = [a for a in self._alarms if not a.cancelled]
                heapq.heapify(self._alarms)
                self._cancelled = 0

    def _run(self) -> None:
        with self._changed:
            while True:
                while self._alarms and self._alarms[0].cancelled:
                    heapq.heappop(self._alarms)
                    self._cancelled -= 1
                if not self._alarms:
                    self._changed.wait()
                    continue
                wait = self._alarms[0].deadline - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                alarm = heapq.heappop(self._alarms)
                raise_in_thread(alarm.thread_id, alarm.exc_type)


WATCHDOG = Watchdog()
