"""Unit tests for the worker-concurrency settings, the diagnostic catalogue switch and executor helpers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from engine import catalog
from engine.settings import PROJECT_ROOT, ConfigError, Settings, diagnostic_jobs_enabled
from engine.watchdog import raise_in_thread
from engine.worker import JobStopped, rss_mb


def test_worker_defaults():
    settings = Settings.from_env({})
    assert (settings.worker_processes, settings.worker_threads) == (2, 32)
    assert (settings.worker_max_jobs, settings.worker_max_rss_mb, settings.worker_hang_grace) == (50000, 400, 30.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKER_PROCESSES", "-1"),
        ("WORKER_PROCESSES", "many"),
        ("WORKER_THREADS", "2000"),
        ("WORKER_THREADS", "0"),
        ("WORKER_MAX_JOBS", "1.5"),
        ("WORKER_MAX_RSS_MB", "-5"),
        ("WORKER_HANG_GRACE", "0"),
        ("WORKER_HANG_GRACE", "soon"),
        ("DIAGNOSTIC_JOBS", "maybe"),
    ],
)
def test_bad_worker_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
        diagnostic_jobs_enabled({name: value})


def test_diagnostic_jobs_are_off_unless_asked():
    assert not diagnostic_jobs_enabled({})
    assert diagnostic_jobs_enabled({"DIAGNOSTIC_JOBS": "1"})
    assert "crash_process" not in catalog.CATALOG  # the test process has no DIAGNOSTIC_JOBS


def test_diagnostic_jobs_catalogued_when_enabled():
    code = "from engine import catalog; print(' '.join(sorted(catalog.CATALOG)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env={"DIAGNOSTIC_JOBS": "true"}, capture_output=True, text=True
    )
    assert {"crash_process", "hold_memory", "noop", "sleep", "spin"} <= set(out.stdout.split()), out.stderr


def test_rss_is_measured():
    assert 5 < rss_mb() < 4096


def test_raise_in_thread_interrupts_python_code():
    caught: list[BaseException] = []
    started = threading.Event()

    def loop() -> None:
        started.set()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pass
        except JobStopped as exc:
            caught.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    started.wait(5)
    assert raise_in_thread(thread.ident, JobStopped)
    thread.join(10)
    assert not thread.is_alive() and isinstance(caught[0], JobStopped)
