"""make run: the development-only processes of Procfile.dev (the mail sink) join the Procfile's, never replace them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from engine.settings import PROJECT_ROOT


def load_devstack():
    spec = importlib.util.spec_from_file_location("devstack", PROJECT_ROOT / "scripts" / "devstack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def process_names(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [line.split(":", 1)[0] for line in lines if line.strip() and not line.startswith("#")]


def test_dev_procfile_adds_the_mail_sink_to_every_procfile_process(tmp_path, monkeypatch):
    devstack = load_devstack()
    monkeypatch.setattr(devstack, "VAR_DIR", tmp_path)
    combined = devstack.procfile_with_dev_processes()
    assert combined.parent == tmp_path
    assert process_names(combined) == process_names(PROJECT_ROOT / "Procfile") + ["mail"]
    assert "mail" not in process_names(PROJECT_ROOT / "Procfile")  # production never runs the sink
    honcho = Path(sys.executable).parent / "honcho"
    check = subprocess.run([str(honcho), "check", "-f", str(combined)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
