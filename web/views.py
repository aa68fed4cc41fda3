"""HTML pages: the submit form and the self-updating job page."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError

from jobs import catalog
from jobs.queues import TERMINAL, enqueue, fetch_job, job_view
from web import state

bp = Blueprint("views", __name__)

JOB_TYPE = "count_words_at_url"


@bp.get("/")
def index():
    """The submit form."""
    return render_template("index.html", form=FlaskForm(), values={}, errors={})


@bp.post("/")
def submit():
    """Validate the form, enqueue, and 303 to the job page; invalid input re-renders it with a 422."""
    values = form_values()
    params = {name: value.strip() for name, value in values.items() if value.strip()}
    job_type = catalog.get(JOB_TYPE)
    try:
        params = job_type.validate(params)
    except catalog.InvalidParams as exc:
        errors = {key.removeprefix("params."): message for key, message in exc.errors.items()}
        return render_template("index.html", form=FlaskForm(), values=values, errors=errors), 422
    job = enqueue(state.queues()["default"], job_type, params, state.settings())
    return redirect(url_for("views.job_page", job_id=job.id), code=303)


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError):
    """CSRFProtect refused the post before the view ran: show the form again, with what was typed."""
    errors = {"form": "The form expired or was not sent from this site. Please submit it again."}
    return render_template("index.html", form=FlaskForm(), values=form_values(), errors=errors), 400


def form_values() -> dict[str, str]:
    return {name: request.form.get(name, "") for name in ("url", "top")}


@bp.get("/jobs/<job_id>")
def job_page(job_id: str):
    """The job's page; it updates itself (script, or meta refresh without JavaScript)."""
    job = fetch_job(state.redis(), job_id)
    if job is None:
        abort(404, description=f"No job {job_id!r}: it expired or never existed.")
    view = job_view(job)
    return render_template("job.html", job=view, terminal=view["status"] in TERMINAL)
