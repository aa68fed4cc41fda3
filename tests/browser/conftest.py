"""Browser-test fixtures: a real stack (gunicorn + worker process + the session's redis-server) and Chromium.

Chromium is Debian's (``executable_path``) when installed, else Playwright's own. Each test gets a fresh browser
on an empty temporary profile, launched with exactly the flags in ``tests.browser.chromium.LAUNCH_ARGS``.
No browser: under ``CI=true`` the tests fail; elsewhere they are skipped with a loud reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.embedded_redis import RedisServer, free_port
from engine.settings import PROJECT_ROOT
from tests.browser import chromium
from tests.browser.pages import Pages
from tests.conftest import TEST_PASSWORD, WorkerProcess

# Every run takes the screenshots; `make screenshots` writes them to docs/screenshots/ for the README.
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR") or PROJECT_ROOT / "var" / "screenshots")
DESKTOP = {"width": 1100, "height": 820}
PHONE = {"width": 375, "height": 740}
START_DEADLINE = 60.0  # seconds for gunicorn to answer: generous, the machine is shared


@dataclass
class Stack:
    """The running web server and worker, and what the tests need to reach them."""

    base_url: str
    pages: Pages
    web_log: Path
    worker: WorkerProcess

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def logs(self) -> str:
        return f"--- web ---\n{self.web_log.read_text(errors='replace')}\n--- worker ---\n{self.worker.log()}"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The browser to drive, or skip (fail under CI=true) when none is installed."""
    path = chromium.find()
    if path is None:
        if chromium.missing_is_fatal():
            pytest.fail(chromium.MISSING, pytrace=False)
        pytest.skip(chromium.MISSING)
    return path


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """gunicorn serving the app and one worker process, on the session's private Redis."""
    logs = tmp_path_factory.mktemp("browser-stack")
    port = free_port()
    env = {
        "REDIS_URL": redis_server.url,
        "APP_ENV": "testing",
        "SECRET_KEY": "test-secret-key-0123456789",
        "DASHBOARD_PASSWORD": TEST_PASSWORD,
        "FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
        "FETCH_TIMEOUT": "30",  # a held page must not time out while a test looks at it
        "WEB_CONCURRENCY": "1",
        "PORT": str(port),
        # One job at a time, so a job submitted behind a held one is visibly queued before it runs.
        "WORKER_PROCESSES": "1",
        "WORKER_THREADS": "1",
    }
    web_log = logs / "web.log"
    with Pages() as pages, open(web_log, "wb") as log:
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:web.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
             "tests.browser.wsgi:app()"],
            cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        )
        worker = WorkerProcess(env, (), logs / "worker.log")
        try:
            _wait_until_up(f"http://127.0.0.1:{port}/healthz", web, web_log)
            yield Stack(f"http://127.0.0.1:{port}", pages, web_log, worker)
        finally:
            pages.release_all()
            worker.stop()
            web.terminate()
            try:
                web.wait(15)
            except subprocess.TimeoutExpired:
                web.kill()
                web.wait()


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:  # answering, not ready yet: close its socket
            exc.close()
            time.sleep(0.1)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer within {START_DEADLINE} s:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def playwright_driver():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def open_browser(chromium_path: str, playwright_driver, tmp_path: Path) -> Iterator[Callable[..., object]]:
    """Factory: a fresh Chromium on an empty profile dir, with context options (viewport, JS, credentials…).

    Fails the test if any page logged a Content-Security-Policy violation.
    """
    contexts = []
    violations: list[str] = []

    def open_context(**options):
        profile = tmp_path / f"profile{len(contexts)}"
        profile.mkdir()
        context = playwright_driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path,
            headless=True,
            args=chromium.LAUNCH_ARGS,
            viewport=options.pop("viewport", DESKTOP),
            **options,
        )
        context.set_default_timeout(30_000)
        context.on("console", lambda message: _csp(message.text, violations))
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()
    assert not violations, f"Content-Security-Policy violations: {violations}"


def _csp(text: str, violations: list[str]) -> None:
    if "Content Security Policy" in text:
        violations.append(text)


@pytest.fixture
def page(open_browser):
    """A desktop-sized page with JavaScript on."""
    context = open_browser()
    return context.pages[0] if context.pages else context.new_page()


def api(stack: Stack, method: str, path: str, body: object = None) -> dict:
    """One JSON API call to the stack, as a script makes it; HTTP errors raise."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(stack.url(path), data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def log_in(page, stack: Stack, next_path: str = "/") -> None:
    """Log this browser in as the operator at the pages' login form, going on to ``next_path``."""
    page.goto(stack.url("/login?next=" + next_path))
    fill_login(page)
    page.wait_for_url(stack.url(next_path))


def fill_login(page) -> None:
    """Send the operator login form the page shows."""
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()


def screenshot(page, name: str) -> None:
    """Save a full-page screenshot (var/screenshots/, or docs/screenshots/ under `make screenshots`)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
