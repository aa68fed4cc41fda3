"""Geometry for the server-rendered SVG bar chart (no script, no inline style: it works under a strict CSP)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ROW_HEIGHT = 34  # a label line, then its bar
BAR_HEIGHT = 10
LABEL_CHARS = 28  # longer labels are cut in the chart; the table beside it has them whole
MIN_PERCENT = 0.5  # the smallest bar still shows as a sliver


@dataclass(frozen=True)
class Bar:
    """One row: label and value text on a line, the bar under them."""

    label: str
    value: int
    value_text: str
    percent: float
    text_y: int
    bar_y: int


@dataclass(frozen=True)
class BarChart:
    """Bars scaled to the largest value; ``height`` in CSS pixels, widths in percent of the chart's width."""

    bars: tuple[Bar, ...]
    height: int
    bar_height: int = BAR_HEIGHT


def bar_chart(rows: Iterable[tuple[str, int]]) -> BarChart:
    """Lay out one bar per (label, value), largest value = full width."""
    rows = list(rows)
    largest = max((value for _, value in rows), default=0)
    bars = tuple(
        Bar(
            label=_cut(label),
            value=value,
            value_text=f"{value:,}",
            percent=round(max(value / largest * 100, MIN_PERCENT), 2) if largest else MIN_PERCENT,
            text_y=index * ROW_HEIGHT + 15,
            bar_y=index * ROW_HEIGHT + 20,
        )
        for index, (label, value) in enumerate(rows)
    )
    return BarChart(bars=bars, height=len(bars) * ROW_HEIGHT)


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
