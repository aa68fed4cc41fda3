"""Jobs' own result views: a job may ship a Jinja template beside it, loaded here as ``jobs/<type>.html``.

The template receives the job page's ``job`` (``job.result`` is the return value) and a few helpers that any result
view can use: ``bar_chart`` for a server-rendered SVG chart, ``rows_with`` to keep the well-formed rows of a
stored list, and the ``number`` and ``size`` filters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask
from jinja2 import ChoiceLoader, FunctionLoader

from engine import catalog
from web import humanize
from web.charts import BarChart, bar_chart

PREFIX = "jobs/"


def init_app(app: Flask) -> None:
    """Let templates include ``jobs/<type>.html`` and use the chart and number helpers."""
    app.jinja_loader = ChoiceLoader([app.jinja_loader, FunctionLoader(load_template)])
    app.jinja_env.globals["bar_chart"] = chart_of
    app.jinja_env.globals["rows_with"] = rows_with
    app.jinja_env.filters["number"] = humanize.number
    app.jinja_env.filters["size"] = humanize.size


def load_template(name: str) -> str | None:
    """The source of a job's result template, by ``jobs/<type>.html``; None for anything else."""
    if not name.startswith(PREFIX) or not name.endswith(".html"):
        return None
    job_type = catalog.lookup(name[len(PREFIX):-len(".html")])
    if job_type is None or job_type.result_template is None:
        return None
    return job_type.result_template.read_text(encoding="utf-8")


def chart_of(rows: Any, label: str, value: str) -> BarChart:
    """A bar chart of the rows (mappings) that have a text ``label`` and a whole-number ``value``."""
    return bar_chart((str(row[label]), row[value]) for row in rows_with(rows, label, value))


def rows_with(rows: Any, *keys: str) -> Iterable[dict[str, Any]]:
    """The rows that are mappings holding all ``keys``; anything else in a stored result is skipped."""
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, dict) and all(key in row for key in keys)]
