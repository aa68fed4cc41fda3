"""Periodic jobs: the clock (``clock.py``) enqueues each entry once per slot, however many clocks run.

Give each entry a unique name, a job type with its params, and either ``every`` (seconds) or ``cron`` (UTC), e.g.::

    Periodic("recount-home", "count_words_at_url", {"url": "https://example.com/"}, every=3600)
    Periodic("nightly-docs", "count_words_at_url", {"url": "https://example.com/docs"}, cron="15 3 * * *")

Entries can also come from a JSON file named by SCHEDULE_FILE. ``python clock.py --check`` validates them all.
"""

from engine import Periodic

SCHEDULE: tuple[Periodic, ...] = ()  # empty: nothing runs on a schedule until you add entries
