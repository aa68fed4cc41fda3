"""How the browser tests find or install Chromium, what happens without one, and the flags it runs with."""

from __future__ import annotations

import pytest

from tests.browser import chromium


@pytest.mark.browser
def test_the_browser_the_tests_drive_runs_with_every_closed_network_flag(open_browser):
    page = open_browser().new_page()
    page.goto("chrome://version")
    command_line = page.locator("#command_line").inner_text().split()
    assert [flag for flag in chromium.LAUNCH_ARGS if flag not in command_line] == []


def test_system_chromium_comes_before_playwrights(monkeypatch):
    monkeypatch.setattr(chromium.shutil, "which", lambda name: f"/usr/bin/{name}" if name == "chromium" else None)
    monkeypatch.setattr(chromium, "playwright_chromium", lambda: "/root/.cache/ms-playwright/chrome")
    assert chromium.find() == "/usr/bin/chromium"
    monkeypatch.setattr(chromium.shutil, "which", lambda name: None)
    assert chromium.find() == "/root/.cache/ms-playwright/chrome"


@pytest.fixture
def commands(monkeypatch) -> list[str]:
    """Records install commands instead of running them; nothing gets installed."""
    ran: list[str] = []
    monkeypatch.setattr(chromium, "_run", lambda command, timeout: ran.append(" ".join(command[:1] + command[-3:]))
                        or True)
    monkeypatch.setattr(chromium, "find", lambda: None)
    return ran


def test_root_on_debian_installs_the_distribution_package_then_tries_playwright(monkeypatch, commands):
    monkeypatch.setattr(chromium, "_is_root_on_debian", lambda: True)
    assert chromium.install() is False
    assert commands[0].startswith("apt-get") and commands[0].endswith("update -qq")
    assert commands[1].startswith("apt-get") and "chromium" in commands[1]
    assert commands[2].endswith("playwright install chromium")


def test_elsewhere_playwright_downloads_its_own(monkeypatch, commands):
    monkeypatch.setattr(chromium, "_is_root_on_debian", lambda: False)
    chromium.install()
    assert len(commands) == 1 and commands[0].endswith("playwright install chromium")


@pytest.mark.parametrize(("ci", "fatal"), [("true", True), ("TRUE", True), ("", False), ("false", False)])
def test_a_missing_browser_fails_only_under_ci(ci, fatal):
    assert chromium.missing_is_fatal({"CI": ci}) is fatal


@pytest.mark.parametrize(("ci", "word"), [("true", "FAIL (CI=true)"), ("", "be SKIPPED")])
def test_make_test_says_loudly_when_no_browser_could_be_had(monkeypatch, commands, capsys, ci, word):
    monkeypatch.setattr(chromium, "_is_root_on_debian", lambda: False)
    monkeypatch.setenv("CI", ci)
    assert chromium.main() == 0  # pytest decides: it fails or skips the browser tests with the reason
    assert f"they will {word}" in capsys.readouterr().err
