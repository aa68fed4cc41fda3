"""Find a Chromium for the browser tests, and (``python -m tests.browser.chromium``) install one if none is found.

Order: Debian's ``chromium`` on PATH, then a browser Playwright downloaded. When neither is there, ``make test``
installs one: ``apt-get install chromium`` when running as root on Debian (downloads of browser builds are often
blocked where only package registries are reachable), else ``python -m playwright install chromium``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

SYSTEM_NAMES = ("chromium", "chromium-browser")
# The flags a closed network needs (no background connections, no QUIC). Playwright's headless=True adds
# --headless and a fresh temporary --user-data-dir itself; --headless is listed too, so the list is whole.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
APT_LOCK_WAIT = "600"  # seconds: other jobs on a shared machine may hold the dpkg lock
INSTALL_TIMEOUT = 900.0  # seconds per install step, lock wait included
MISSING = (
    "NO CHROMIUM FOUND: the browser tests are NOT RUN. `make test` installs one (apt-get install chromium as root "
    "on Debian, else python -m playwright install chromium); see docs/web-ui.md."
)


def missing_is_fatal(environ: Mapping[str, str] = os.environ) -> bool:
    """Under CI=true a missing browser fails the run; elsewhere the browser tests are skipped."""
    return environ.get("CI", "").lower() == "true"


def system_chromium() -> str | None:
    """Path of the distribution's Chromium, if installed."""
    for name in SYSTEM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def playwright_chromium() -> str | None:
    """Path of the Chromium that ``playwright install`` downloaded, if it is there."""
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            path = p.chromium.executable_path
    except Exception:  # noqa: BLE001 - no driver, no browser: either way there is nothing to use
        return None
    return path if path and Path(path).is_file() else None


def find() -> str | None:
    """The Chromium to launch: the system one first (Debian), else Playwright's."""
    return system_chromium() or playwright_chromium()


def _is_root_on_debian() -> bool:
    return os.geteuid() == 0 and Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


def _run(command: list[str], timeout: float) -> bool:
    """Run an install step; a hang (a blocked download) counts as a failure after ``timeout`` seconds."""
    print("+", " ".join(command), flush=True)
    try:
        return subprocess.run(command, check=False, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        print(f"  gave up after {timeout:.0f} s", flush=True)
        return False


def install() -> bool:
    """Try to install a Chromium; True when one can be found afterwards."""
    if _is_root_on_debian():
        apt = ["apt-get", "-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT}"]
        if _run([*apt, "update", "-qq"], INSTALL_TIMEOUT):
            # A font of our own: a bare image may have none, and screenshots would show empty boxes.
            _run([*apt, "install", "-y", "-qq", "--no-install-recommends", "chromium", "fonts-dejavu-core"],
                 INSTALL_TIMEOUT)
    if find() is None:
        _run([sys.executable, "-m", "playwright", "install", "chromium"], INSTALL_TIMEOUT)
    return find() is not None


def main() -> int:
    """Report the browser in use, installing one if needed. Never fails the build: the tests decide (see CI)."""
    path = find()
    if path is None:
        print("browser tests: no Chromium found; installing one", flush=True)
        if install():
            path = find()
    if path is None:
        outcome = "they will FAIL (CI=true)" if missing_is_fatal() else "they will be SKIPPED"
        print(f"\n*** browser tests: no Chromium could be installed; {outcome}. ***\n", file=sys.stderr, flush=True)
        return 0
    print(f"browser tests: using {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
