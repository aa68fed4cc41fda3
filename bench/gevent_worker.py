"""Bench only: our worker.py with gevent's monkey patching, so its job threads become greenlets.

Used by bench/run.py to measure the gevent option against threads. Not a supported way to run workers: job
timeouts and stop-job raise an exception in an OS thread, which greenlets do not have (see
docs/performance.md).
"""

from gevent import monkey

monkey.patch_all()

import runpy  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.argv = [str(ROOT / "worker.py"), *sys.argv[1:]]
runpy.run_path(str(ROOT / "worker.py"), run_name="__main__")
