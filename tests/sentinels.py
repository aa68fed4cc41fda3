"""A Sentinel set-up on loopback for failover tests: a primary, one replica and three Sentinels, real processes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from engine.embedded_redis import RedisServer, find_redis_server, free_port
from tests.faults import wait_until

SERVICE = "stack"
DOWN_AFTER_MS = 1000


class SentinelSet:
    """Primary + replica (RedisServer, AOF on) and three Sentinels watching them with a quorum of two."""

    def __init__(self, root: Path):
        self.root = root
        self.primary = RedisServer(root / "primary", port=free_port())
        self.replica = RedisServer(root / "replica", port=free_port(),
                                   extra=(f"replicaof 127.0.0.1 {self.primary.port}",))
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> SentinelSet:
        self.primary.start()
        self.replica.start()
        for number, port in enumerate(self.sentinel_ports):
            directory = self.root / f"sentinel{number}"
            directory.mkdir(parents=True)
            (directory / "sentinel.conf").write_text("\n".join([
                f"port {port}", "bind 127.0.0.1", f"dir {directory}", "logfile sentinel.log",
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2",
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {SERVICE} 10000",
            ]) + "\n")
            self.sentinels.append(subprocess.Popen(
                [find_redis_server(), str(directory / "sentinel.conf"), "--sentinel"], cwd=directory,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        # Ready when the replica is in sync and every Sentinel knows the replica and the two other Sentinels.
        ready = wait_until(self._settled, 30, pause=0.2)
        assert ready, "the Sentinel set did not settle within 30 s"
        return self

    def _settled(self) -> bool:
        try:
            if self.client(self.replica.port).info("replication").get("master_link_status") != "up":
                return False
            for port in self.sentinel_ports:
                master = self.client(port).sentinel_master(SERVICE)
                if master["num-slaves"] < 1 or master["num-other-sentinels"] < 2:
                    return False
        except RedisError:
            return False
        return True

    def client(self, port: int) -> Redis:
        return Redis(port=port, socket_timeout=1, socket_connect_timeout=1)

    def primary_port(self) -> int | None:
        """The port the Sentinels name as the primary now (None if they cannot say)."""
        try:
            return int(self.client(self.sentinel_ports[0]).sentinel_get_master_addr_by_name(SERVICE)[1])
        except (RedisError, TypeError):
            return None

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait()
        self.replica.stop()
        self.primary.stop()

    def __enter__(self) -> SentinelSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sigkill(server: RedisServer) -> float:
    """SIGKILL a redis-server; returns when it is gone (time.monotonic())."""
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    return time.monotonic()
