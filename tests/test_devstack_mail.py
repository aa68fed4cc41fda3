"""make run: Procfile.dev (the mail sink) joins the Procfile's processes, a signal stops every one of them, and a
machine without a usable Redis server gets a message instead of a traceback."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.embedded_redis import free_port
from engine.settings import PROJECT_ROOT
from tests.faults import wait_until


def process_names(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [line.split(":", 1)[0] for line in lines if line.strip() and not line.startswith("#")]


def test_dev_procfile_adds_the_mail_sink_to_every_procfile_process(tmp_path, monkeypatch):
    devstack = load_script("devstack")
    monkeypatch.setattr(devstack, "VAR_DIR", tmp_path)
    combined = devstack.procfile_with_dev_processes()
    assert combined.parent == tmp_path
    assert process_names(combined) == process_names(PROJECT_ROOT / "Procfile") + ["mail"]
    assert "mail" not in process_names(PROJECT_ROOT / "Procfile")  # production never runs the sink
    honcho = Path(sys.executable).parent / "honcho"
    check = subprocess.run([str(honcho), "check", "-f", str(combined)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


def load_script(name: str):
    """A module from scripts/, which is not a package."""
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["sigint-to-make-run-alone", "terminal-closed"])
def test_make_run_leaves_nothing_running_when_signalled(redis_server, redis, signum, tmp_path):
    marker = f"stack-test-{secrets.token_hex(6)}"
    env = {**os.environ, "DEVSTACK_TEST": marker, "REDIS_URL": redis_server.url, "PORT": str(free_port()),
           "SMTP_URL": "smtp://127.0.0.1:1", "SECRET_KEY": "devstack-secret-key-0123", "DASHBOARD_PASSWORD": "x" * 12,
           "METRICS_TOKEN": "m" * 24, "SHUTDOWN_GRACE": "3"}
    log = tmp_path / "devstack.log"
    with open(log, "wb") as out:
        # Its own session, like a terminal's: the signal reaches make run's own process and nothing else.
        devstack = subprocess.Popen([sys.executable, "scripts/devstack.py"], cwd=PROJECT_ROOT, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    leftovers = load_script("smoke").leftovers
    try:
        assert wait_until(lambda: "Web:" in log.read_text() or devstack.poll() is not None, 90), log.read_text()
        assert len(leftovers(marker)) >= 4, log.read_text()  # make run, honcho, web, worker, clock at least
        devstack.send_signal(signum)
        devstack.wait(3 + 5 + 10)  # SHUTDOWN_GRACE + 5 s, and room for a loaded machine
        assert wait_until(lambda: not leftovers(marker), 10), leftovers(marker)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(devstack.pid, signal.SIGKILL)
        for line in leftovers(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)


@pytest.mark.parametrize(("banner", "said"), [("Redis server v=6.2.14 sha=00000000:0", "older than Redis 7"),
                                              (None, "cannot run")], ids=["too-old", "missing"])
def test_make_run_without_a_usable_redis_server_says_what_to_do(tmp_path, banner, said):
    server = tmp_path / "redis-server"
    if banner is not None:
        server.write_text(f"#!/bin/sh\necho '{banner}'\n")
        server.chmod(0o755)
    env = {name: value for name, value in os.environ.items() if name != "REDIS_URL"}
    env.update(REDIS_SERVER=str(server), PORT=str(free_port()), SMTP_URL="smtp://127.0.0.1:1",
               SECRET_KEY="devstack-secret-key-0123", DASHBOARD_PASSWORD="x" * 12, METRICS_TOKEN="m" * 24)
    ran = subprocess.run([sys.executable, "scripts/devstack.py"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert said in ran.stderr and "Traceback" not in ran.stderr, ran.stderr


def test_with_no_redis_server_anywhere_the_error_names_the_ways_out(monkeypatch):
    from engine import embedded_redis

    monkeypatch.delenv("REDIS_SERVER", raising=False)
    monkeypatch.setattr(embedded_redis, "shipped_redis_server", lambda: None)
    monkeypatch.setattr(embedded_redis.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="REDIS_URL") as raised:
        embedded_redis.find_redis_server()
    assert "PATH" in str(raised.value) and "REDIS_SERVER" in str(raised.value)
