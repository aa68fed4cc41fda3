"""How the TLS tier picks its redis-server: the first on PATH that accepts TLS settings, saying why others do not."""

from __future__ import annotations

import os
from pathlib import Path

from tests import system_packages

NO_TLS = "echo \"*** FATAL CONFIG FILE ERROR ***\"; echo \">>> 'tls-port \\\"0\\\"'\"; echo 'Bad directive'; exit 1"
WITH_TLS = "echo '# Configured to not listen anywhere, exiting.'; exit 1"


def redis_server_in(directory: Path, script: str) -> Path:
    """A stand-in redis-server that answers the TLS probe as a real build would."""
    directory.mkdir()
    binary = directory / "redis-server"
    binary.write_text(f"#!/bin/sh\n{script}\n")
    binary.chmod(0o755)
    return binary


def test_a_build_without_tls_earlier_on_path_is_passed_over_and_named(tmp_path, monkeypatch):
    without = redis_server_in(tmp_path / "venv-bin", NO_TLS)
    with_tls = redis_server_in(tmp_path / "usr-bin", WITH_TLS)
    monkeypatch.delenv("REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join([str(without.parent), str(with_tls.parent)]))
    binary, refusals = system_packages.tls_redis_server()
    assert binary == str(with_tls)
    assert refusals == [f"{without} is built without TLS (it said: >>> 'tls-port \"0\"' Bad directive)"]


def test_none_that_serves_tls_is_reported_with_each_reason(tmp_path, monkeypatch):
    without = redis_server_in(tmp_path / "bin", NO_TLS)
    monkeypatch.delenv("REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(without.parent))
    assert system_packages.tls_redis_server() == (None, [f"{without} is built without TLS (it said: >>> "
                                                          "'tls-port \"0\"' Bad directive)"])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert system_packages.tls_redis_server()[0] is None
