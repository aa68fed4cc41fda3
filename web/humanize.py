"""Numbers and times as people read them: "took 1.2 s", "5 min ago", "12.3 KB"."""

from __future__ import annotations

from datetime import datetime

_UNITS = (("d", 86400), ("h", 3600), ("min", 60))


def duration(seconds: float) -> str:
    """A duration: 'under 0.1 s', '0.4 s', '1.2 s', '12 s', '2 min 5 s', '1 h 3 min', '2 d 4 h'."""
    seconds = max(seconds, 0.0)
    if seconds < 0.05:
        return "under 0.1 s"  # "0.0 s" reads as if nothing happened
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{int(seconds)} s"
    whole = int(seconds)
    for index, (unit, size) in enumerate(_UNITS):
        if whole >= size:
            major, rest = divmod(whole, size)
            minor_unit, minor_size = _UNITS[index + 1] if index + 1 < len(_UNITS) else ("s", 1)
            minor = rest // minor_size
            return f"{major} {unit} {minor} {minor_unit}" if minor else f"{major} {unit}"
    raise AssertionError("unreachable: seconds >= 60 matches the minute unit")


def age(then: datetime, now: datetime) -> str:
    """How long ago: 'just now', '5 s ago', '3 min ago', '2 h ago', '4 days ago'."""
    seconds = (now - then).total_seconds()
    if seconds < 2:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return f"{days} day ago" if days == 1 else f"{days} days ago"


def size(count: int) -> str:
    """A byte count: '512 B', '12.3 KB', '4.0 MB' (powers of 1024, as file browsers show them)."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable: GB is the last unit")


def number(value: int) -> str:
    """An integer with thousands separators: '12,345'."""
    return f"{value:,}"
