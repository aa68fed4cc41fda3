"""A callback a forged queue entry names: if a worker ever imports and calls it, it leaves a marker file."""

from __future__ import annotations

import os
from pathlib import Path

MARKER_ENV = "FORGED_CALLBACK_MARKER"


def leave_marker(*args: object) -> None:
    """Touch the file named by $FORGED_CALLBACK_MARKER (the worker's environment)."""
    Path(os.environ[MARKER_ENV]).touch()
