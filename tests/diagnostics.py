"""Diagnostic jobs for benchmarks and fault-injection tests; catalogued only when DIAGNOSTIC_JOBS is on.

They are jobs, so they stay out of the engine, and they are test tooling, not the user's: they live with the tests
and stand on the engine's job API alone. The catalogue imports this module by name, as it does ``jobs``.

They let the benchmark measure the worker's own overhead (``noop``) and let tests prove that a job which
sleeps, spins, crashes its process or leaks memory cannot take other jobs down. Never enable them in
production: ``crash_process`` ends the worker process on purpose.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

from pydantic import Field

from engine import job

Seconds = Annotated[float, Field(ge=0, le=600)]
Megabytes = Annotated[int, Field(ge=1, le=4096)]

_HELD: list[bytearray] = []  # what hold_memory leaks on purpose, until the process is recycled


@job(retry=(), diagnostic=True)
def noop() -> None:
    """Do nothing: measures the worker's overhead per job."""


@job(retry=(), diagnostic=True)
def sleep(seconds: Seconds = 0.1) -> float:
    """Wait without using the CPU, like a job waiting on the network (blocks in C, beyond a timeout's reach)."""
    time.sleep(seconds)
    return seconds


@job(retry=(), diagnostic=True)
def spin(seconds: Seconds = 0.1) -> int:
    """Use the CPU in Python bytecode for ``seconds`` (a timeout can interrupt it)."""
    deadline, loops = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        loops += 1
    return loops


@job(retry=(), diagnostic=True)
def crash_process(code: Annotated[int, Field(ge=1, le=125)] = 70) -> None:
    """End the worker process at once, as a segfault or an OOM kill would."""
    os._exit(code)


@job(retry=(), diagnostic=True)
def hold_memory(mb: Megabytes = 64) -> int:
    """Allocate ``mb`` MB and keep it (a leak): the process should be recycled past its memory limit."""
    block = bytearray(mb * 2**20)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page so it is resident
    _HELD.append(block)
    return sum(len(b) for b in _HELD) // 2**20
