"""What the job pages show, worked out from a job's public view: labels, timings, progress, errors and results.

Pure functions of the API view (``engine.queues.job_view``) and a clock, so every wording is unit-tested;
templates only place the pieces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine import catalog, errors
from engine.status import TERMINAL
from web import forms, humanize

WAITING = frozenset({"queued", "scheduled", "deferred"})
CANCELABLE = WAITING | {"started"}
RETRYABLE = frozenset({"failed", "stopped", "canceled"})
URL_CHARS = 120

STATUS_LABELS = {
    "queued": "Queued",
    "scheduled": "Scheduled",
    "deferred": "Waiting",
    "started": "Running",
    "finished": "Finished",
    "failed": "Failed",
    "canceled": "Canceled",
    "stopped": "Stopped",
}
@dataclass(frozen=True)
class Step:
    """One point on the queued → started → ended line."""

    name: str
    at: datetime | None
    note: str
    state: str  # done | current | pending


@dataclass(frozen=True)
class ProgressView:
    """A <progress> bar: ``maximum`` None means indeterminate."""

    label: str
    value: int | None
    maximum: int | None
    text: str


@dataclass(frozen=True)
class ErrorView:
    headline: str
    message: str
    kind: str


@dataclass(frozen=True)
class QueueState:
    """Where a queued job stands: jobs ahead of it, and workers listening on its queue."""

    ahead: int | None
    workers: int


@dataclass(frozen=True)
class JobDisplay:
    """Everything the job page shows."""

    id: str
    status: str
    status_label: str
    type: str
    title: str
    url: str | None
    url_text: str  # the URL as shown: very long ones are cut in the middle (the link keeps all of it)
    params: list[tuple[str, str, str]]  # (name, label, value as text)
    priority: str
    created_at: datetime | None
    summary: str
    steps: list[Step]
    progress: ProgressView | None
    error: ErrorView | None
    notice: str | None
    result: Any  # the job's return value once it has finished
    result_template: str | None  # the job's own view of its result, when it ships one
    result_items: list[tuple[str, str, bool]] | None  # (key, text, preformatted) when it does not
    terminal: bool
    can_cancel: bool
    can_retry: bool


def present(view: dict[str, Any], origin: str, meta: dict[str, Any], now: datetime,
            queue: QueueState | None = None) -> JobDisplay:
    """The job page's content for a job's API view, its queue and its meta, at ``now``."""
    status = view["status"]
    params = view.get("params") if isinstance(view.get("params"), dict) else {}
    job_type = view.get("type") or "unknown"
    known = catalog.lookup(job_type)
    created, started, ended = (_time(view.get(key)) for key in ("enqueued_at", "started_at", "ended_at"))
    created = created or _time(view.get("created_at"))
    template = result_template(known) if status == "finished" else None
    labels = param_labels(job_type)
    return JobDisplay(
        id=view["id"],
        status=status,
        status_label=STATUS_LABELS.get(status, status.title()),
        type=job_type,
        title=title(job_type),
        url=_web_url(params.get("url")),
        url_text=_cut_middle(_web_url(params.get("url")) or ""),
        params=[(key, labels.get(key) or forms.label(key), _text(value)) for key, value in params.items()],
        priority=forms.PRIORITIES.get(origin, origin),
        created_at=_time(view.get("created_at")),
        summary=summary(status, created, started, ended, now) + _ahead(status, queue),
        steps=steps(status, created, started, ended, now),
        progress=progress(view.get("progress"), known.stages if known else {}) if status == "started" else None,
        error=error(view.get("error")),
        notice=view.get("waiting") or notice(status, meta) or _no_worker(status, queue, origin),
        result=view.get("result") if status == "finished" else None,
        result_template=template,
        result_items=None if template or status != "finished" else result_items(view.get("result")),
        terminal=status in TERMINAL,
        can_cancel=status in CANCELABLE,
        can_retry=status in RETRYABLE and isinstance(view.get("params"), dict),
    )


def form_heading(job_type: catalog.JobType) -> str:
    """The submit form's heading: the job's label, else its name read aloud."""
    return job_type.label or forms.label(job_type.name)


def result_template(job_type: catalog.JobType | None) -> str | None:
    """The template name under which the job's own result view is loaded (see ``templates.JobTemplates``)."""
    return f"jobs/{job_type.name}.html" if job_type is not None and job_type.result_template else None


def param_labels(job_type: str) -> dict[str, str]:
    """Parameter name → the label its form field has, for a catalogued job type."""
    known = catalog.CATALOG.get(job_type)
    return {f.name: f.label for f in forms.fields_for(known)} if known else {}


def title(job_type: str) -> str:
    """The job page's heading: the job's title, else its name read aloud."""
    known = catalog.lookup(job_type)
    return (known.title if known else "") or forms.label(job_type, None)


def summary(status: str, created: datetime | None, started: datetime | None, ended: datetime | None,
            now: datetime) -> str:
    """One sentence: 'Took 1.2 s, after waiting 0.3 s in the queue.'"""
    waited = _span(created, started)
    if status in WAITING:
        return f"Waiting in the queue for {_span(created, now) or 'a moment'}."
    if status == "started":
        return f"Running for {_span(started, now) or 'a moment'}, after waiting {waited or '0.0 s'} in the queue."
    if status == "canceled":
        return "Canceled before it ran." if not started else "Canceled."
    ran = _span(started, ended)
    if ran is None:
        return f"{STATUS_LABELS.get(status, status.title())}."
    verb = "Took" if status == "finished" else "Ran for"
    return f"{verb} {ran}, after waiting {waited or '0.0 s'} in the queue."


def steps(status: str, created: datetime | None, started: datetime | None, ended: datetime | None,
          now: datetime) -> list[Step]:
    """Queued → started → ended, each with its time and a short note."""
    waiting, running = status in WAITING, status == "started"
    waited = _span(created, started or (now if waiting else None))
    queued_note = (f"waiting for {waited}" if waiting else f"waited {waited} in the queue") if waited else ""
    ran = _span(started, ended or (now if running else None))
    run_note = (f"running for {ran}" if running else f"took {ran}") if ran else ""
    run_state = "current" if running else ("done" if started else "pending")
    if status in TERMINAL:
        total = _span(created, ended) if started else None
        end_step = Step(STATUS_LABELS[status], ended, f"{total} in all" if total else "", "done")
    else:
        end_step = Step("Finished", None, "", "pending")
    return [
        Step("Queued", created, queued_note, "current" if waiting else "done"),
        Step("Started", started, run_note, run_state),
        end_step,
    ]


def progress(raw: Any, stages: Mapping[str, str] | None = None) -> ProgressView:
    """The progress bar for a running job: bytes of total, or indeterminate while the total is unknown.

    ``stages`` are the job's own words for its stages; others are shown as named."""
    raw = raw if isinstance(raw, dict) else {}
    stage = str(raw.get("stage") or "")
    label = (stages or {}).get(stage) or stage.capitalize() or "Starting"
    done = raw.get("bytes") if isinstance(raw.get("bytes"), int) else 0
    total = raw.get("total") if isinstance(raw.get("total"), int) and raw["total"] > 0 else None
    if total is None:
        text = f"{humanize.size(done)} so far" if done else "Starting…"
        return ProgressView(label, None, None, text)
    done = min(done, total)
    percent = int(done * 100 / total)
    return ProgressView(label, done, total, f"{humanize.size(done)} of {humanize.size(total)} ({percent}%)")


def error(raw: Any) -> ErrorView | None:
    """The error in plain words: a headline for its type, then the job's own message."""
    if not isinstance(raw, dict):
        return None
    kind = str(raw.get("type") or "Error")
    message = str(raw.get("message") or "")
    message = message[:1].upper() + message[1:]
    catalog.load()  # job modules define their error classes, and so their headlines
    return ErrorView(errors.headline(kind), message, kind)


def notice(status: str, meta: dict[str, Any]) -> str | None:
    """A note for a job waiting to retry after a failed attempt."""
    recorded = meta.get("error")
    if status not in WAITING or not isinstance(recorded, dict):
        return None
    attempt = meta.get("failures", 1)
    return f"Attempt {attempt} failed ({recorded.get('message', 'no message')}); it will be tried again."


def _ahead(status: str, queue: QueueState | None) -> str:
    if status != "queued" or queue is None or not queue.ahead:
        return ""
    return " 1 job is ahead of it." if queue.ahead == 1 else f" {queue.ahead} jobs are ahead of it."


def _no_worker(status: str, queue: QueueState | None, origin: str) -> str | None:
    """Say so when nothing will pick the job up: better than a job that seems stuck."""
    if status != "queued" or queue is None or queue.workers:
        return None
    name = forms.PRIORITIES.get(origin, origin)
    return f"No worker is serving the {name} queue right now; the job starts as soon as one does."


def result_items(result: Any) -> list[tuple[str, str, bool]]:
    """A result of another job type as rows: scalars as text, anything nested as indented JSON."""
    if not isinstance(result, dict):
        return [("Result", _text(result), not _is_scalar(result))]
    return [(forms.label(str(key), None), _text(value), not _is_scalar(value)) for key, value in result.items()]


def _cut_middle(text: str, limit: int = URL_CHARS) -> str:
    if len(text) <= limit:
        return text
    tail = (limit - 1) // 2
    return f"{text[:limit - 1 - tail]}…{text[-tail:]}"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if _is_scalar(value):
        return json.dumps(value)
    return json.dumps(value, indent=2, ensure_ascii=False)


def _web_url(value: Any) -> str | None:
    """The URL to show as a link: only http(s), so a stored value can never become a javascript: link."""
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return value
    return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _span(start: datetime | None, end: datetime | None) -> str | None:
    if start is None or end is None:
        return None
    return humanize.duration((end - start).total_seconds())
