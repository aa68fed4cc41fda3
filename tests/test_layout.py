"""The layout is the architecture: no import cycles, jobs → engine only, a job's ``import engine`` loading only the
job API, and no job named outside its own room."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import catalog
from engine.settings import PROJECT_ROOT

PRODUCT = ("engine", "jobs", "tests/diagnostics.py", "web", "worker.py", "clock.py", "cli.py")
JOB_ROOMS = ("jobs", "tests.diagnostics")  # the user's jobs, and the ones for benchmarks and fault tests
JOB_API = {"engine", "engine.settings"}  # what a job may import from the engine
# What ``import engine`` loads for a job: the decorator and catalogue, Progress, the errors, Periodic, ended_items.
JOB_SIDE = {"engine", "engine.aggregate", "engine.catalog", "engine.errors", "engine.progress", "engine.schedule",
            "engine.settings", "engine.redis_url", "engine.status"}  # redis_url: the settings' URL parser, no client
PROCESS_MACHINERY = {"multiprocessing", "subprocess", "signal", "rq.worker", "rq.queue", "rq.registry"}


def product_modules() -> dict[str, Path]:
    """Every module of the product by dotted name (tests, bench and scripts are not the product)."""
    modules = {}
    for top in PRODUCT:
        root = PROJECT_ROOT / top
        for path in [root] if root.suffix == ".py" else sorted(root.rglob("*.py")):
            parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = product_modules()


def imports_of(name: str, path: Path) -> Iterator[str]:
    """The modules ``path`` imports anywhere in its body (function-level imports included), as dotted names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in MODULES else base


def graph() -> dict[str, set[str]]:
    """Module → the product modules it imports."""
    return {name: {m for m in imports_of(name, path) if m in MODULES and m != name} for name, path in MODULES.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_can_fail():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_there_are_no_import_cycles():
    assert cycles(graph()) == []


def test_the_engine_never_imports_the_jobs():
    edges = graph()
    assert {(m, t) for m in edges if m.startswith("engine") for t in edges[m] if t.startswith(JOB_ROOMS)} == set()


def test_jobs_use_only_the_engine_api_and_no_process_machinery():
    rooms = [name for name in MODULES if any(name == room or name.startswith(f"{room}.") for room in JOB_ROOMS)]
    assert "tests.diagnostics" in rooms and "jobs.mail" in rooms
    for name in rooms:
        path = MODULES[name]
        imported = set(imports_of(name, path))
        assert {m for m in imported if m.split(".")[0] in ("engine", "web", "worker", "clock", "cli")} <= JOB_API, name
        assert not {m for m in imported if m in PROCESS_MACHINERY or m.split(".")[0] in PROCESS_MACHINERY}, name


@pytest.mark.parametrize("room", ["web", "cli.py", "worker.py", "clock.py", "engine"])
def test_no_job_type_is_named_outside_jobs(room):
    names = {*catalog.CATALOG, *catalog.INTERNAL}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names))) + r")\b")
    root = PROJECT_ROOT / room
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.suffix in (".py", ".html", ".js", ".css")]
    named = {str(p.relative_to(PROJECT_ROOT)): pattern.findall(p.read_text(encoding="utf-8")) for p in files}
    assert {path: found for path, found in named.items() if found} == {}


def engine_modules_loaded_by(module: str) -> set[str]:
    """The engine's modules a fresh interpreter holds after importing ``module``."""
    code = (f"import json, sys, {module}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'engine')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", ["jobs.mail", "jobs.wordcount", "jobs.schedule", "tests.diagnostics"])
def test_a_job_loads_only_the_job_side_of_the_engine(module):
    assert engine_modules_loaded_by(module) - JOB_SIDE == set()


def test_the_job_side_check_can_fail():
    assert {"engine.queues", "engine.lifecycle", "engine.metrics"} <= engine_modules_loaded_by("engine.lifecycle")
