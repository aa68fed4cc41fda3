"""HTML pages: the submit form (generated from the job catalogue), recent jobs, and the self-updating job page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import DeserializationError
from rq.job import Job

from engine import catalog
from engine.lifecycle import list_jobs
from engine.queues import NotCancelable, cancel_job, enqueue, fetch_job, job_status, job_view
from web import forms, humanize, presentation, state

bp = Blueprint("views", __name__)

RECENT_LIMIT = 10


@bp.get("/")
def index():
    """The submit form for the chosen job type, and the recent jobs."""
    job_type = _chosen_type(request.args.get("type"))
    return _form_page(job_type, values={}, errors={})


@bp.post("/")
def submit():
    """Validate the form, enqueue, and 303 to the job page; invalid input re-renders it with a 422."""
    job_type = _chosen_type(request.form.get("type"))
    fields = forms.fields_for(job_type)
    values = {**forms.form_values(fields, request.form), "priority": request.form.get("priority", "default")}
    errors: dict[str, str] = {}
    try:
        params = job_type.validate(forms.parse(fields, request.form))
    except catalog.InvalidParams as exc:
        errors = forms.field_errors(exc.errors)
    priority_problem = forms.priority_error(values["priority"])
    if priority_problem:
        errors["priority"] = priority_problem
    if errors:
        return _form_page(job_type, values, errors), 422
    job = enqueue(state.queues()[values["priority"]], job_type, params, state.settings())
    return redirect(url_for("views.job_page", job_id=job.id), code=303)


@bp.get("/recent")
def recent():
    """The recent-jobs list alone, for recent.js to refresh the badges."""
    return render_template("_recent.html", recent=_recent())


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError):
    """CSRFProtect refused the post before the view ran: say so, and keep what was typed."""
    message = "The form expired or was not sent from this site. Please submit it again."
    if request.view_args and "job_id" in request.view_args:
        back = url_for("views.job_page", job_id=request.view_args["job_id"])
        return render_template("error.html", status=400, message=message, back=back), 400
    job_type = _chosen_type(request.form.get("type"))
    values = {**forms.form_values(forms.fields_for(job_type), request.form),
              "priority": request.form.get("priority", "default")}
    return _form_page(job_type, values, {"form": message}), 400


@bp.get("/jobs/<job_id>")
def job_page(job_id: str):
    """The job's page; it updates itself (job.js polls the panel, or a meta refresh without JavaScript)."""
    return render_template("job.html", job=_display(_job_or_404(job_id)))


@bp.get("/jobs/<job_id>/panel")
def job_panel(job_id: str):
    """The changing part of the job page, for job.js to swap in place."""
    return render_template("_job_panel.html", job=_display(_job_or_404(job_id)))


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    """Cancel a waiting job or stop a running one, then 303 back to its page with what happened."""
    job = _job_or_404(job_id)
    try:
        outcome = cancel_job(state.redis(), job)
        flash("The job was canceled." if outcome == "canceled" else "Stopping the job…", "info")
    except NotCancelable as exc:
        flash(str(exc), "error")
    return redirect(url_for("views.job_page", job_id=job_id), code=303)


@bp.post("/jobs/<job_id>/retry")
def retry(job_id: str):
    """Try again: a new job with the same type, params and priority; 303 to its page."""
    job = _job_or_404(job_id)
    view = job_view(job)
    try:
        job_type = catalog.get(view["type"])
        params = job_type.validate(view["params"] or {})
    except (catalog.UnknownJobType, catalog.InvalidParams) as exc:
        back = url_for("views.job_page", job_id=job_id)
        return render_template("error.html", status=422, message=f"This job cannot be run again: {exc}",
                               back=back), 422
    queue = state.queues().get(job.origin) or state.queues()["default"]
    new = enqueue(queue, job_type, params, state.settings())
    return redirect(url_for("views.job_page", job_id=new.id), code=303)


@bp.app_context_processor
def navigation() -> dict[str, Any]:
    """The dashboard link, shown only when the dashboard is mounted (it needs DASHBOARD_PASSWORD)."""
    return {"dashboard_url": "/rq/" if state.settings().dashboard_password else None}


def _chosen_type(name: str | None) -> catalog.JobType:
    """The job type a form is for: the one named, else the first anyone may submit; an unknown name is a 404."""
    if not name:
        return catalog.default_type()
    if name not in catalog.CATALOG:
        abort(404, description=f"There is no job type {name!r}.")
    return catalog.CATALOG[name]


def _form_page(job_type: catalog.JobType, values: dict[str, str], errors: dict[str, str]) -> str:
    return render_template(
        "index.html",
        form=FlaskForm(),
        job_type=job_type,
        job_types=list(catalog.CATALOG.values()),
        fields=forms.fields_for(job_type),
        priorities=forms.PRIORITIES,
        values=values,
        errors=errors,
        recent=_recent(),
        heading=presentation.form_heading(job_type),
        submit_text=job_type.submit_label,
        label=forms.label,
    )


def _recent() -> list[dict[str, Any]] | None:
    """Rows for the recent-jobs list, or None when Redis cannot be read (the form still works)."""
    try:
        jobs, _ = list_jobs(state.redis(), limit=RECENT_LIMIT)
    except RedisError:
        return None
    now = datetime.now(UTC)
    return [_recent_row(job, now) for job in jobs]


def _recent_row(job: Job, now: datetime) -> dict[str, Any]:
    status = job_status(job)
    try:
        params = job.kwargs if isinstance(job.kwargs, dict) else {}
    except DeserializationError:  # a corrupt entry still gets a row, so it can be opened and seen to fail
        params = {}
    job_type = job.meta.get("type") or "unknown"
    if "url" in params:
        what = str(params["url"])
    else:
        what = ", ".join(f"{key}: {value}" for key, value in list(params.items())[:2])
    return {
        "id": job.id,
        "status": status,
        "status_label": presentation.STATUS_LABELS.get(status, status.title()),
        "active": status not in presentation.TERMINAL,
        "type": forms.label(job_type),
        "what": what,
        "created_at": job.created_at,
        "age": humanize.age(job.created_at, now) if job.created_at else "",
    }


def _job_or_404(job_id: str) -> Job:
    job = fetch_job(state.redis(), job_id)
    if job is None:
        abort(404, description=f"No job {job_id!r}: it expired or never existed.")
    return job


def _display(job: Job) -> presentation.JobDisplay:
    view = job_view(job)
    queue_state = _queue_state(job) if view["status"] == "queued" else None
    return presentation.present(view, job.origin, dict(job.meta), datetime.now(UTC), queue_state)


def _queue_state(job: Job) -> presentation.QueueState | None:
    """Jobs ahead and workers listening, for a queued job (two cheap reads: LPOS and SCARD)."""
    queue = state.queues().get(job.origin)
    if queue is None:
        return None
    return presentation.QueueState(queue.get_job_position(job.id), Worker.count(connection=state.redis(), queue=queue))
