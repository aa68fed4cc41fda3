"""The JSON API: submit a job, read it back. Errors share one shape (see web.errors)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for

from jobs import catalog
from jobs.queues import enqueue, fetch_job, job_view
from web import state
from web.errors import ApiError

bp = Blueprint("api", __name__, url_prefix="/api")

SUBMIT_FIELDS = {"type", "params"}


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 saying what is wrong with it."""
    if not request.is_json:
        raise ApiError(400, "bad_request", "Send a JSON body with Content-Type: application/json.")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "bad_request", "The body is not valid JSON.")
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "The body must be a JSON object.")
    return body


def validated_job(body: dict[str, Any]) -> tuple[catalog.JobType, dict[str, Any]]:
    """The job type and cleaned params named by a submission, or a 422 naming the problem."""
    unknown = sorted(set(body) - SUBMIT_FIELDS)
    if unknown:
        raise ApiError(422, "invalid_request", f"Unknown field(s): {', '.join(unknown)}.")
    try:
        job_type = catalog.get(body.get("type"))
        return job_type, job_type.validate(body.get("params", {}))
    except catalog.UnknownJobType as exc:
        raise ApiError(422, "unknown_job_type", str(exc)) from None
    except catalog.InvalidParams as exc:
        raise ApiError(422, "invalid_params", str(exc)) from None


@bp.post("/jobs")
def submit_job():
    """Validate and enqueue a job; answer 202 with the job at once."""
    job_type, params = validated_job(json_body())
    job = enqueue(state.queues()["default"], job_type, params, state.settings())
    location = url_for("api.get_job", job_id=job.id)
    return jsonify(job_view(job)), 202, {"Location": location}


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    """The job's status, progress, result and error."""
    job = fetch_job(state.redis(), job_id)
    if job is None:
        raise ApiError(404, "not_found", f"No job {job_id!r}: it expired or never existed.")
    return jsonify(job_view(job))
