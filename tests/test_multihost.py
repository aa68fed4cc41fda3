"""Many worker hosts against one Redis: each worker in its own network namespace and UTS namespace (its own
host name), reaching Redis over a veth pair. Redis and the page server live in a third namespace, so nothing
is added to the machine's own network; the test talks to Redis over its unix socket.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import catalog
from engine.connection import connect
from engine.embedded_redis import RedisServer, find_redis_server
from engine.enqueue import enqueue
from engine.health import live_workers
from engine.queues import fetch_job
from engine.settings import PROJECT_ROOT, Settings
from engine.status import job_status
from tests.conftest import SAMPLE_PAGE
from tests.processes import ProcessGroup, venv_env

pytestmark = pytest.mark.integration

# 198.18.0.0/15 is set aside for network tests (RFC 2544): it lives only inside the namespaces made here.
HOSTS = {"host-a": ("198.18.1.1", "198.18.1.2"), "host-b": ("198.18.2.1", "198.18.2.2")}
REDIS_PORT = 6390
PAGE_PORT = 8080
PAGE_DELAY = 0.2  # each fetch takes this long, so one worker cannot drain the queue before the other starts


def unavailable(reason: str) -> None:
    """Namespaces cannot be made here: a failure under CI, a loud skip on a developer's machine."""
    message = f"multi-host test not run: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def namespaces() -> Iterator[dict[str, str]]:
    """A namespace for Redis and one per worker host, joined by veth pairs; always deleted afterwards."""
    if os.geteuid() != 0:
        unavailable("creating network namespaces needs root")
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            unavailable(f"the {tool!r} command is missing (Debian: iproute2, util-linux)")
    tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    names = {"redis": f"rqr{tag}", **{host: f"rq{host[-1]}{tag}" for host in HOSTS}}
    made: list[str] = []
    try:
        for ns in names.values():
            result = ip("netns", "add", ns, check=False)
            if result.returncode != 0:
                unavailable(f"`ip netns add` failed: {result.stderr.strip()}")
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        for index, (host, (redis_addr, host_addr)) in enumerate(HOSTS.items()):
            outer, inner = f"vr{index}{tag}"[:15], f"vh{index}{tag}"[:15]
            ip("link", "add", outer, "netns", names["redis"], "type", "veth", "peer", "name", inner,
               "netns", names[host])
            ip("-n", names["redis"], "addr", "add", f"{redis_addr}/30", "dev", outer)
            ip("-n", names[host], "addr", "add", f"{host_addr}/30", "dev", inner)
            ip("-n", names["redis"], "link", "set", outer, "up")
            ip("-n", names[host], "link", "set", inner, "up")
            # The Redis namespace is each host's gateway, so a host reaches every address served there.
            ip("-n", names[host], "route", "add", "default", "via", redis_addr)
        yield names
    finally:
        for ns in made:  # deleting a namespace deletes its end of each veth pair, and so the pair
            ip("netns", "del", ns, check=False)


class NamespacedRedis(RedisServer):
    """redis-server inside a namespace, on the veth addresses with a password, checked over its unix socket."""

    def __init__(self, data_dir: Path, namespace: str, password: str):
        binds = " ".join(redis_addr for redis_addr, _ in HOSTS.values())
        super().__init__(data_dir, extra=(f"port {REDIS_PORT}", f"bind {binds}", f"requirepass {password}",
                                          "protected-mode yes"))
        self.namespace, self.password = namespace, password

    @property
    def url(self) -> str:
        return f"unix://:{self.password}@{self.socket_path}?db=0"


def in_namespace(namespace: str, hostname: str | None, command: str) -> list[str]:
    """argv running a shell command in a network namespace, under its own host name when given."""
    if hostname is None:
        return ["ip", "netns", "exec", namespace, "sh", "-c", command]
    return ["ip", "netns", "exec", namespace, "unshare", "--uts", "sh", "-c", f"hostname {hostname} && {command}"]


PAGE_SERVER = textwrap.dedent(f"""
    import sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    body = sys.stdin.buffer.read()
    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep({PAGE_DELAY})
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("0.0.0.0", {PAGE_PORT}), Page)
    open(sys.argv[1], "w").close()
    server.serve_forever()
""")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_workers_on_two_hosts_share_one_redis(namespaces, tmp_path, monkeypatch, request):
    password = secrets.token_hex(16)
    wrapper = tmp_path / "redis-in-namespace"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {namespaces["redis"]} {find_redis_server()} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("REDIS_SERVER", str(wrapper))
    started: list[ProcessGroup] = []
    page: subprocess.Popen[bytes] | None = None
    with NamespacedRedis(tmp_path / "redis", namespaces["redis"], password) as server:
        try:
            ready = tmp_path / "page-ready"
            page = subprocess.Popen(
                ["ip", "netns", "exec", namespaces["redis"], sys.executable, "-c", PAGE_SERVER, str(ready)],
                stdin=subprocess.PIPE, start_new_session=True,
            )
            page.stdin.write(SAMPLE_PAGE)
            page.stdin.close()
            wait_for(ready.exists, 30, "the page server in the Redis namespace")
            for host, (redis_addr, _) in HOSTS.items():
                env = venv_env(REDIS_URL=f"redis://:{password}@{redis_addr}:{REDIS_PORT}/0", APP_ENV="testing",
                               FETCH_ALLOW_NETWORKS="198.18.0.0/15", FETCH_TIMEOUT="10")
                # One job at a time per host, so the twelve jobs spread over both hosts instead of one claim
                # filling a process's threads.
                command = (f"exec {sys.executable} {PROJECT_ROOT / 'worker.py'} --name worker-{host} "
                           "--processes 1 --threads 1")
                started.append(ProcessGroup(in_namespace(namespaces[host], host, command), env,
                                            tmp_path / f"{host}.log"))
            redis = connect(Settings.from_env({"REDIS_URL": server.url}))
            request.addfinalizer(redis.close)
            wait_for(lambda: len(live_workers(redis)) == 2, 60,
                     "both workers to register: " + " | ".join(g.log()[-500:] for g in started))
            assert {w.hostname for w in live_workers(redis)} == set(HOSTS)

            settings = Settings.from_env({"REDIS_URL": server.url, "APP_ENV": "testing"})
            word_count = catalog.get("count_words_at_url")
            urls = [f"http://{redis_addr}:{PAGE_PORT}/" for redis_addr, _ in HOSTS.values()]
            jobs = [enqueue(redis, word_count, word_count.validate({"url": urls[i % 2]}), settings, queue="default")
                    for i in range(12)]

            def all_done():
                found = [fetch_job(redis, job["id"]) for job in jobs]
                return all(job_status(j) in {"finished", "failed"} for j in found) and found

            done = wait_for(all_done, 90, "the jobs to finish: " + " | ".join(g.log()[-800:] for g in started))
            assert [job_status(j) for j in done] == ["finished"] * len(jobs), [j.meta for j in done]
            assert all(j.return_value()["total_words"] == 9 for j in done)
            assert not any(j.meta.get("failures") for j in done), "a job needed a retry: a host could not reach"
            # Supervised processes are named "<name>.<slot>.<generation>".
            assert {j.worker_name.split(".")[0] for j in done} == {f"worker-{host}" for host in HOSTS}
            # Each worker reached Redis from its own host's address, over its veth pair.
            clients = redis.client_list()
            for host, (_, host_addr) in HOSTS.items():
                assert any(c["addr"].startswith(f"{host_addr}:") for c in clients), (host, clients)
            # The container-style health check, run on one worker host, finds that host's worker.
            env = venv_env(REDIS_URL=f"redis://:{password}@{HOSTS['host-a'][0]}:{REDIS_PORT}/0")
            check = subprocess.run(
                in_namespace(namespaces["host-a"], "host-a", f"exec {sys.executable} worker.py --check"),
                cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60,
            )
            assert check.returncode == 0 and "worker-host-a" in check.stderr, check.stderr
        finally:
            for group in started:
                group.stop()
            if page is not None:
                os.killpg(page.pid, signal.SIGKILL)
                page.wait()
