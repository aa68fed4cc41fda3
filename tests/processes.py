"""Helpers for tests that run whole process trees (honcho, gunicorn, workers in namespaces) and talk HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.settings import PROJECT_ROOT


class ProcessGroup:
    """A command in its own session; ``stop`` ends the whole group (SIGTERM, then SIGKILL)."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            list(cmd), cwd=PROJECT_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the group and wait; SIGKILL what is left, the group and any process still logging to us."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # stragglers that left the group (RQ's work horses call setpgrp) but were not reaped
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self._log.close()


def venv_env(**extra: str) -> dict[str, str]:
    """os.environ with the venv's bin first on PATH, as the Procfile's `python` and `gunicorn` need."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request: status, headers and body; HTTP errors are answers, not exceptions."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:  # closes its socket
            return exc.code, dict(exc.headers), exc.read()


def wait_http_ok(url: str, group: ProcessGroup, timeout: float = 60.0) -> bool:
    """True once ``url`` answers 200; False if the group exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and group.process.poll() is None:
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def wait_job(base_url: str, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the API until the job is terminal (or the deadline passes); the last view of it."""
    deadline = time.monotonic() + timeout
    while True:
        job = json.loads(http("GET", f"{base_url}/api/jobs/{job_id}")[2])
        if job.get("status") in {"finished", "failed", "canceled", "stopped"} or time.monotonic() > deadline:
            return job
        time.sleep(0.1)
