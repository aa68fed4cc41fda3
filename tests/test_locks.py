"""The lock files: what a deploy installs is complete, pinned with hashes, and agrees with the dev tools' lock."""

from __future__ import annotations

import re

import pytest

from engine.settings import PROJECT_ROOT

ENTRY = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)(?: ;[^\\]*)? \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)",
                   re.M)


def normalise(name: str) -> str:
    """A distribution name as pip compares them, without extras."""
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def locked(file: str) -> dict[str, str]:
    """Name → pinned version for every entry of a compiled lock file."""
    text = (PROJECT_ROOT / file).read_text()
    entries = {normalise(name): version for name, version, _hashes in ENTRY.findall(text)}
    pinned_lines = re.findall(r"^[A-Za-z0-9_.-]+==", text, re.M)
    assert len(entries) == len(pinned_lines), f"{file}: an entry without a hash"
    return entries


def direct(file: str) -> set[str]:
    """The distributions an .in file names directly."""
    names = set()
    for line in (PROJECT_ROOT / file).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(normalise(re.split(r"[<>=!~; ]", line, maxsplit=1)[0]))
    return names


@pytest.mark.parametrize(("source", "lock"), [("requirements.in", "requirements.txt"),
                                              ("requirements-dev.in", "requirements-dev.txt")])
def test_every_direct_dependency_is_locked_with_hashes(source, lock):
    missing = direct(source) - set(locked(lock))
    assert not missing, f"{lock} lacks {sorted(missing)}: run make lock"


def test_the_dev_lock_holds_the_runtime_lock():
    runtime, dev = locked("requirements.txt"), locked("requirements-dev.txt")
    assert "-r requirements.in" in (PROJECT_ROOT / "requirements-dev.in").read_text()
    differ = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
    assert not differ, f"the locks disagree (runtime, dev): {differ}; run make lock"


def test_the_gevent_worker_class_gets_what_it_imports():
    assert re.search(r"^gunicorn\[gevent\]", (PROJECT_ROOT / "requirements.in").read_text(), re.M)
    assert {"packaging", "gevent"} <= set(locked("requirements.txt"))
