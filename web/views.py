"""HTML pages: the submit form (generated from the job catalogue), recent jobs, and the self-updating job page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import DeserializationError
from rq.job import Job

from engine import catalog, lifecycle
from engine.cancel import NotCancelable, cancel_job
from engine.queues import SERIALIZER, CatalogJob, fetch_job
from engine.settings import QUEUE_NAMES
from engine.status import job_status, job_view
from web import access, forms, humanize, presentation, state

bp = Blueprint("views", __name__)

RECENT_LIMIT = 10  # job ids this browser's session remembers (and the home page lists)
_PATH_CHARS = re.compile(r"[!-\[\]-~]+")  # printable ASCII, no space and no backslash


@bp.get("/")
def index():
    """The submit form for the chosen job type, and this browser's recent jobs."""
    job_type = _chosen_type(request.args.get("type"))
    if not access.may_submit(job_type):
        return redirect(url_for("views.login", next=url_for("views.index", type=job_type.name)), code=303)
    return _form_page(job_type, values={}, errors={})


@bp.post("/")
def submit():
    """Validate the form, enqueue, and 303 to the job page; invalid input re-renders it with a 422."""
    job_type = _chosen_type(request.form.get("type"))
    if not access.may_submit(job_type):
        return _login_needed(job_type)
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
    job = lifecycle.submit(state.redis(), lifecycle.Submission(job_type, params, values["priority"]), state.settings(),
                           client=access.client())
    _remember(job["id"])
    return redirect(url_for("views.job_page", job_id=job["id"]), code=303)


@bp.get("/recent")
def recent():
    """The recent-jobs list alone, for recent.js to refresh the badges."""
    return render_template("_recent.html", recent=_recent())


@bp.get("/login")
def login():
    """The operator login (DASHBOARD_USER / DASHBOARD_PASSWORD): it lets this browser's form submit protected jobs."""
    if not access.login_configured():
        abort(404, description="There is no operator login here: DASHBOARD_PASSWORD is not set.")
    return render_template("login.html", form=FlaskForm(), error=None, next=_safe_next(request.args.get("next")))


@bp.post("/login")
def login_post():
    """Check the operator's user and password; mark the session and 303 on, or 401 with the form again."""
    if not access.login_configured():
        abort(404, description="There is no operator login here: DASHBOARD_PASSWORD is not set.")
    target = _safe_next(request.form.get("next"))
    if not access.check_login(request.form.get("username", ""), request.form.get("password", "")):
        access.charge_failed_login()
        error = "Wrong user name or password."
        return render_template("login.html", form=FlaskForm(), error=error, next=target), 401
    access.log_in()
    flash("Logged in: protected job types are offered on the form.", "info")
    return redirect(target, code=303)


@bp.post("/logout")
def logout():
    access.log_out()
    flash("Logged out.", "info")
    return redirect(url_for("views.index"), code=303)


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
    if not access.may_submit(job_type):
        return _login_needed(job_type, back=url_for("views.job_page", job_id=job_id))
    priority = job.origin if job.origin in QUEUE_NAMES else lifecycle.DEFAULT_PRIORITY
    new = lifecycle.submit(state.redis(), lifecycle.Submission(job_type, params, priority), state.settings(),
                           client=access.client())
    _remember(new["id"])
    return redirect(url_for("views.job_page", job_id=new["id"]), code=303)


@bp.app_context_processor
def navigation() -> dict[str, Any]:
    """The dashboard link (shown only when mounted: it needs DASHBOARD_PASSWORD) and the operator login state."""
    configured = access.login_configured()
    return {"dashboard_url": "/rq/" if configured else None, "login_offered": configured,
            "operator": access.logged_in()}


def _chosen_type(name: str | None) -> catalog.JobType:
    """The job type a form is for: the one named, else the first anyone may submit; an unknown name is a 404."""
    if not name:
        return catalog.default_type()
    if name not in catalog.CATALOG:
        abort(404, description=f"There is no job type {name!r}.")
    return catalog.CATALOG[name]


def _login_needed(job_type: catalog.JobType, back: str | None = None):
    """403: a protected job type, and this browser is not logged in as the operator."""
    name = presentation.form_heading(job_type)
    if access.login_configured():
        message = (f"{name!r} is a protected job type: log in as the operator (the dashboard user and password) "
                   "to submit it.")
    else:
        message = (f"{name!r} is a protected job type, and this deployment has no operator login "
                   "(DASHBOARD_PASSWORD is unset): it can be submitted only with the API token.")
    return render_template("error.html", status=403, message=message, back=back,
                           login_url=url_for("views.login") if access.login_configured() else None), 403


def _safe_next(target: str | None) -> str:
    """A path on this site to go on to after logging in; anything else (another host, a scheme) gives the home page.

    Judged as a browser will follow it: browsers drop tabs and newlines from a URL and read a backslash as a
    slash, so ``/<tab>/evil.example`` and ``/\\evil.example`` lead off-site. Only printable ASCII without a
    backslash is kept, and what is left must parse as a bare path (no scheme, no host) that starts with one slash.
    """
    if not target or not _PATH_CHARS.fullmatch(target):
        return url_for("views.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("views.index")
    return target


def _remember(job_id: str) -> None:
    """Put a job this browser submitted at the top of its recent list (in the signed session, bounded)."""
    ids = [job_id, *(i for i in session.get("recent", []) if i != job_id)]
    session["recent"] = ids[:RECENT_LIMIT]


def _form_page(job_type: catalog.JobType, values: dict[str, str], errors: dict[str, str]) -> str:
    return render_template(
        "index.html",
        form=FlaskForm(),
        job_type=job_type,
        job_types=[t for t in catalog.CATALOG.values() if access.may_submit(t)],
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
    """Rows for the jobs this browser submitted (ids kept in its session), or None when Redis cannot be read.

    Nobody else's jobs are listed: their params (addresses, subjects) are theirs. Expired jobs drop out.
    """
    ids = [i for i in session.get("recent", []) if isinstance(i, str)][:RECENT_LIMIT]
    if not ids:
        return []
    try:
        fetched = CatalogJob.fetch_many(ids, connection=state.redis(), serializer=SERIALIZER)
    except RedisError:
        return None
    jobs = [job for job in fetched if job is not None]
    if len(jobs) < len(ids):
        session["recent"] = [job.id for job in jobs]
    jobs = [job for job in jobs if access.may_see(job)]  # a protected job shows again after the next login
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
    """The job, or the same 404 for an unknown id and for a protected job this browser is not logged in for."""
    job = fetch_job(state.redis(), job_id)
    if job is None or not access.may_see(job):
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
