"""The benchmark's per-job counters: process-tree CPU time and peak memory from /proc (Linux), Redis' own."""

from __future__ import annotations

import os
from pathlib import Path

from redis import Redis

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields after "pid (comm)": state is index 0


def tree(root: int) -> list[int]:
    """``root`` and all its living descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def cpu_seconds(root: int) -> float:
    """CPU (user + system) used by the tree so far, including its reaped children (e.g. RQ work horses)."""
    total = 0
    for pid in tree(root):
        fields = _stat(pid)
        if fields:
            total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / _TICK


def peak_rss(root: int) -> list[dict[str, object]]:
    """Peak resident memory (VmHWM) of every process in the tree, with a short command line."""
    out = []
    for pid in tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        hwm = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), "0")
        out.append({"pid": pid, "cmd": _short(cmdline), "peak_rss_mb": round(int(hwm) / 1024, 1)})
    return out


def _short(cmdline: str) -> str:
    parts = [p for p in cmdline.split() if p]
    parts = [Path(p).name if "/" in p else p for p in parts]
    text = " ".join(parts)
    return text if len(text) <= 70 else text[:67] + "..."


def commands(conn: Redis) -> int:
    """Commands Redis has processed so far (INFO commandstats, excluding INFO itself)."""
    stats = conn.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def redis_cpu(conn: Redis) -> float:
    """CPU seconds redis-server has used (user + system)."""
    info = conn.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
