"""The JSON API: submit a job, read it back. Errors share one shape (see web.errors)."""

from __future__ import annotations

from typing import Any, NoReturn

from flask import Blueprint, current_app, jsonify, request, url_for
from rq.job import Job
from werkzeug.exceptions import RequestEntityTooLarge

from engine import batches, catalog, lifecycle
from engine.cancel import NotCancelable, cancel_job
from engine.errors import InvalidRequest
from engine.queues import fetch_job
from engine.status import job_view
from web import access, ratelimit, state
from web.errors import MAX_BODY_BYTES, ApiError

bp = Blueprint("api", __name__, url_prefix="/api")

SUBMIT_FIELDS = {"type", "params", "priority", "delay_seconds", "at"}
BATCH_FIELDS = {"type", "items", "priority"}


@bp.before_request
def json_only():
    """OPTIONS answers in JSON; every other call that changes state must send Content-Type: application/json.

    A browser sends a cross-site request with that type only after a CORS preflight, which this API never
    approves (no Access-Control-Allow-* header anywhere), so a page on another site cannot cancel or submit here.
    A chunked body has no Content-Length for Werkzeug to refuse up front: it is read up to the limit, and one
    that reaches it is refused as too large rather than parsed cut short.
    """
    if request.method == "OPTIONS":
        allowed = current_app.make_default_options_response().allow
        return jsonify(allow=sorted(allowed)), 200, {"Allow": ", ".join(sorted(allowed))}
    if request.method in ("GET", "HEAD"):
        return None
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send Content-Type: application/json on every call that "
                       "changes something (with an empty body where there is nothing to send).")
    if len(request.get_data(cache=True)) >= MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    return None


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 saying what is wrong with it."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting: Python's JSON parser gives up, the client gets a 400
        body = None
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
        access.require_token_for(job_type)  # before its params: a protected type asks for the token first
        return job_type, job_type.validate(body.get("params", {}))
    except catalog.UnknownJobType as exc:
        raise ApiError(422, "unknown_job_type", str(exc)) from None
    except catalog.InvalidParams as exc:
        raise ApiError(422, "invalid_params", str(exc)) from None


def validated_submission(body: dict[str, Any]) -> lifecycle.Submission:
    """The whole submission (job, priority, run time), or a 422 naming the problem."""
    job_type, params = validated_job(body)
    try:
        return lifecycle.Submission(
            job_type, params, lifecycle.parse_priority(body.get("priority")),
            lifecycle.parse_run_at(body.get("delay_seconds"), body.get("at")),
        )
    except InvalidRequest as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None


@bp.post("/jobs")
@ratelimit.charged_in_view
def submit_job():
    """Validate and enqueue a job; answer 202 with the job at once (200 with the first job for a reused key)."""
    body = json_body()
    submission = validated_submission(body)
    key = request.headers.get("Idempotency-Key")
    if key is None:  # the rate-limit charge rides in the enqueue's one round trip
        charge = ratelimit.take()
        job, created = lifecycle.submit(state.redis(), submission, state.settings(), charge=charge,
                                        client=access.client()), True
    else:
        if not lifecycle.valid_idempotency_key(key):
            raise ApiError(400, "bad_request", "Idempotency-Key must be 1 to 255 printable ASCII characters.")
        ratelimit.settle()  # before the key is claimed: a refused request must leave no trace
        try:
            job, created = lifecycle.submit_idempotent(
                state.redis(), submission, state.settings(), key, submission.fingerprint(body),
                client=access.client(),
            )
        except lifecycle.IdempotencyConflict as exc:
            raise ApiError(409, "idempotency_conflict", str(exc)) from None
    location = url_for("api.get_job", job_id=job["id"])
    return jsonify(job), 202 if created else 200, {"Location": location}


@bp.get("/jobs")
def list_jobs():
    """Recent jobs, newest first: ``?status=&type=&limit=&cursor=``; ``next_cursor`` pages on. Needs the token."""
    access.require_token("Listing every job")
    status = request.args.get("status") or None
    if status is not None and status not in lifecycle.STATUSES:
        raise ApiError(422, "invalid_request", f"status must be one of {', '.join(lifecycle.STATUSES)}.")
    limit = _int_arg("limit", lifecycle.LIST_DEFAULT_LIMIT, 1, lifecycle.LIST_MAX_LIMIT)
    try:
        jobs, cursor = lifecycle.list_jobs(
            state.redis(), status, request.args.get("type") or None, limit, request.args.get("cursor")
        )
    except InvalidRequest as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    return jsonify(jobs=[job_view(job) for job in jobs], next_cursor=cursor)


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    """The job's status, progress, result and error; ``?wait=N`` holds the answer until it ends (N ≤ 30 s)."""
    wait = _float_arg("wait", 0.0, 0.0, lifecycle.MAX_WAIT)
    job = _visible_job(job_id)  # before any wait: how long the answer takes must not tell a hidden job exists
    if wait > 0:
        job = lifecycle.wait_for(state.redis(), job_id, wait) or _not_found(job_id)
    return jsonify(job_view(job))


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    """Cancel a waiting job or stop a running one; 409 if it already ended."""
    connection = state.redis()
    job = _visible_job(job_id)
    try:
        target = cancel_job(connection, job)
    except NotCancelable as exc:
        raise ApiError(409, "not_cancelable", str(exc)) from None
    if target == "stopped":  # the worker stops it asynchronously; give it a moment so the answer says so
        job = lifecycle.wait_for(connection, job_id, 5.0) or job
    else:
        job = fetch_job(connection, job_id) or job
    return jsonify(job_view(job))


def _visible_job(job_id: str) -> Job:
    """The job, or the same 404 for an unknown id and for a protected job this request has no credential for."""
    job = fetch_job(state.redis(), job_id)
    if job is None or not access.may_see(job):
        _not_found(job_id)
    return job


def _not_found(job_id: str) -> NoReturn:
    raise ApiError(404, "not_found", f"No job {job_id!r}: it expired or never existed.")


def batch_size() -> int:
    """What a batch costs against the client's rate limit: its number of items (1 when that is out of range and
    the batch will be refused anyway)."""
    try:
        body = request.get_json(silent=True) if request.is_json else None
    except RecursionError:
        body = None
    items = body.get("items") if isinstance(body, dict) else None
    return len(items) if isinstance(items, list) and 1 <= len(items) <= batches.MAX_ITEMS else 1


@bp.post("/batches")
@ratelimit.cost(batch_size)
def submit_batch():
    """Enqueue one job per item and an aggregate that runs when all have ended; 202 with the batch."""
    body = json_body()
    unknown = sorted(set(body) - BATCH_FIELDS)
    if unknown:
        raise ApiError(422, "invalid_request", f"Unknown field(s): {', '.join(unknown)}.")
    try:
        priority = lifecycle.parse_priority(body.get("priority"))
        access.require_token_for(catalog.get(body.get("type")))  # before the items, as for a single job
        job_type, items = batches.validate_items(body.get("type"), body.get("items"))
    except catalog.UnknownJobType as exc:
        raise ApiError(422, "unknown_job_type", str(exc)) from None
    except InvalidRequest as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    record = batches.create_batch(state.redis(), priority, job_type, items, state.settings(),
                                  client=access.client())
    view = batches.batch_view(state.redis(), record["id"])
    return jsonify(view), 202, {"Location": url_for("api.get_batch", batch_id=record["id"])}


@bp.get("/batches/<batch_id>")
def get_batch(batch_id: str):
    """The batch's status, its items' ids and statuses, and the aggregate result."""
    view = batches.batch_view(state.redis(), batch_id)
    if view is None:
        raise ApiError(404, "not_found", f"No batch {batch_id!r}: it expired or never existed.")
    return jsonify(view)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, "invalid_request", f"{name} must be a whole number from {low} to {high}.") from None
    if not low <= value <= high:
        raise ApiError(422, "invalid_request", f"{name} must be a whole number from {low} to {high}.")
    return value


def _float_arg(name: str, default: float, low: float, high: float) -> float:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # NaN fails this too
        raise ApiError(422, "invalid_request", f"{name} must be a number of seconds from {low:g} to {high:g}.")
    return value
