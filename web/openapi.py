"""The OpenAPI 3.1 document for /api, served at /api/openapi.json and built from code.

Each catalogued job type contributes its params schema (pydantic's ``model_json_schema``) to the submission body,
and each type a batch can hold contributes it to the batch body, so a new job appears here by itself. Limits come
from the modules that enforce them. Another endpoint is added with ``register_path(path, method, operation)``.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Blueprint, jsonify

from engine import batches, catalog, lifecycle
from engine.settings import QUEUE_NAMES
from web.errors import MAX_BODY_BYTES

bp = Blueprint("openapi", __name__)

STATUSES = list(lifecycle.STATUSES)
ITEM_STATUSES = [*STATUSES, "expired"]
BATCH_STATUSES = ["queued", "running", "finished", "failed", "canceled", "stopped", "expired"]
ERROR_DESCRIPTIONS = {
    "400": "Malformed JSON",
    "401": "A wrong Authorization header (any route); or no API token where one is needed",
    "403": "The API token is needed, and this deployment has none (API_TOKEN is unset)",
    "413": f"Body of {MAX_BODY_BYTES // 1024} KB or more",
    "415": "Not Content-Type: application/json (every call that changes something needs it, so that a browser "
           "must preflight a cross-site one, which this API never approves)",
    "429": "Too many submissions; see Retry-After",
    "503": "Redis unavailable",
}
TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
JOB_ERROR = {
    "type": "object",
    "required": ["type", "message"],
    "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
}
NULLABLE_JOB_ERROR = {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/JobError"}]}
JOB = {
    "type": "object",
    "required": ["id", "type", "params", "status", "created_at", "enqueued_at", "started_at", "ended_at",
                 "progress", "result", "error"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": ["string", "null"]},
        "params": {"type": ["object", "null"]},
        "status": {"type": "string", "enum": STATUSES},
        "created_at": TIMESTAMP,
        "enqueued_at": TIMESTAMP,
        "started_at": TIMESTAMP,
        "ended_at": TIMESTAMP,
        "progress": {"type": ["object", "null"]},
        "result": {},
        "error": NULLABLE_JOB_ERROR,
        "attempt": {"type": "integer", "minimum": 1},
        "waiting": {"type": ["string", "null"],
                    "description": "Why a queued job has not started yet, when it is not just its turn"},
    },
}
JOB_LIST = {
    "type": "object",
    "required": ["jobs", "next_cursor"],
    "properties": {
        "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
        "next_cursor": {"type": ["string", "null"], "description": "Pass back as `cursor`; null at the end"},
    },
}
BATCH_RESULT = {
    "type": "object",
    "description": "The aggregate job's result: summed words, merged top words, the items that did not finish",
    "required": ["batch_id", "finished", "failed", "total_words", "top_words", "failed_items"],
    "properties": {
        "batch_id": {"type": "string"},
        "finished": {"type": "integer", "minimum": 0},
        "failed": {"type": "integer", "minimum": 0},
        "total_words": {"type": "integer", "minimum": 0},
        "top_words": {"type": "array", "items": {
            "type": "object", "required": ["word", "count"],
            "properties": {"word": {"type": "string"}, "count": {"type": "integer"}},
        }},
        "failed_items": {"type": "array", "items": {
            "type": "object", "required": ["id", "url", "status", "error"],
            "properties": {"id": {"type": "string"}, "url": {"type": ["string", "null"]},
                           "status": {"type": "string"}, "error": {"$ref": "#/components/schemas/JobError"}},
        }},
    },
}
BATCH = {
    "type": "object",
    "required": ["id", "type", "status", "created_at", "counts", "items", "aggregate_id", "result", "error"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string"},
        "status": {"type": "string", "enum": BATCH_STATUSES},
        "created_at": {"type": "string", "format": "date-time"},
        "counts": {"type": "object", "description": "How many items are in each status",
                   "propertyNames": {"enum": ITEM_STATUSES}, "additionalProperties": {"type": "integer"}},
        "items": {"type": "array", "items": {
            "type": "object", "required": ["id", "status"],
            "properties": {"id": {"type": "string"}, "status": {"type": "string", "enum": ITEM_STATUSES}},
        }},
        "aggregate_id": {"type": "string"},
        "result": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/BatchResult"}]},
        "error": NULLABLE_JOB_ERROR,
    },
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
SCHEMAS = {"Job": JOB, "JobError": JOB_ERROR, "JobList": JOB_LIST, "Batch": BATCH, "BatchResult": BATCH_RESULT,
           "Error": ERROR}
PRIORITY = {
    "enum": list(QUEUE_NAMES),
    "default": lifecycle.DEFAULT_PRIORITY,
    "description": "The queue: workers take every high job before any default one, every default before any low",
}
MAX_AHEAD_SECONDS = int(lifecycle.MAX_AHEAD.total_seconds())
DELAY_SECONDS = {
    "type": "number", "exclusiveMinimum": 0, "maximum": MAX_AHEAD_SECONDS,
    "description": "Run after this many seconds (status scheduled until then); not with `at`",
}
AT = {
    "type": "string", "format": "date-time",
    "description": "Run at this ISO 8601 time, with a zone (e.g. 2030-01-01T09:00:00Z); not in the past, at most "
                   f"{lifecycle.MAX_AHEAD.days} days ahead (else 422); not with `delay_seconds`",
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes the submission safe to retry: the same key and body within 24 h answer 200 with the "
                   "first job, another body 409. Printable ASCII; a bad key is a 400",
    "schema": {"type": "string", "minLength": 1, "maxLength": lifecycle.MAX_IDEMPOTENCY_KEY,
               "pattern": "^[!-~](?:[ -~]*[!-~])?$"},
}
LOCATION = {"Location": {"description": "The new resource's URL", "required": True, "schema": {"type": "string"}}}
_EXTRA_PATHS: dict[str, dict[str, Any]] = {}


def register_path(path: str, method: str, operation: dict[str, Any]) -> None:
    """Add an operation (an endpoint defined elsewhere) to the document."""
    _EXTRA_PATHS.setdefault(path, {})[method.lower()] = operation


def ref(name: str) -> dict[str, str]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON ``content`` map for a request or response body."""
    return {"application/json": {"schema": schema}}


def response(description: str, schema_name: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON response whose body is the named component schema."""
    answer: dict[str, Any] = {"description": description, "content": json_content(ref(schema_name))}
    if headers:
        answer["headers"] = headers
    return answer


def error(description: str) -> dict[str, Any]:
    """An error response: the one error shape, with this description."""
    return response(description, "Error")


def errors(*codes: str) -> dict[str, Any]:
    """Error responses for statuses whose description is the same on every endpoint."""
    return {code: error(ERROR_DESCRIPTIONS[code]) for code in codes}


def path_param(name: str, description: str) -> dict[str, Any]:
    """A path parameter: any text without '/', which would make it another path."""
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "pattern": "^[^/]+$"}}


def query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def params_schema(job_type: catalog.JobType, defs: dict[str, Any]) -> dict[str, Any]:
    """A job type's params schema from its catalogue model; its $defs move to ``defs`` (the components)."""
    params = copy.deepcopy(job_type.schema.model_json_schema(ref_template="#/components/schemas/{model}"))
    defs.update(params.pop("$defs", {}))
    return params


def job_submission(job_type: catalog.JobType, defs: dict[str, Any]) -> dict[str, Any]:
    """The submission body for one job type: its params and the lifecycle options."""
    params = params_schema(job_type, defs)
    return {
        "type": "object",
        "title": job_type.name,
        "description": job_type.description + (" Protected: needs the API token." if job_type.access == "protected"
                                               else ""),
        "x-access": job_type.access,
        "required": ["type", "params"] if params.get("required") else ["type"],
        "additionalProperties": False,
        "properties": {"type": {"const": job_type.name}, "params": params, "priority": PRIORITY,
                       "delay_seconds": DELAY_SECONDS, "at": AT},
        "not": {"required": ["delay_seconds", "at"]},
    }


def batch_submission(job_type: catalog.JobType, defs: dict[str, Any]) -> dict[str, Any]:
    """The batch body for one batchable job type: each item is that type's params."""
    return {
        "type": "object",
        "title": f"batch of {job_type.name}",
        "required": ["type", "items"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": job_type.name},
            "items": {"type": "array", "minItems": 1, "maxItems": batches.MAX_ITEMS,
                      "items": params_schema(job_type, defs)},
            "priority": PRIORITY,
        },
    }


def submit_job(defs: dict[str, Any]) -> dict[str, Any]:
    """POST /api/jobs."""
    submissions = [job_submission(job_type, defs) for job_type in catalog.CATALOG.values()]
    return {
        "operationId": "submitJob",
        "summary": "Validate and enqueue (or schedule) a job",
        "parameters": [IDEMPOTENCY_KEY],
        "requestBody": {"required": True, "content": json_content({"oneOf": submissions})},
        "responses": {
            "200": response("The job an earlier request with this Idempotency-Key and body created", "Job", LOCATION),
            "202": response("Accepted; Location names the job", "Job", LOCATION),
            "400": error("Malformed JSON, or a bad Idempotency-Key"),
            "409": error("Idempotency-Key already used with another body, or its first request is still running "
                         "(code idempotency_conflict)"),
            "422": error("Unknown job type, invalid params or options; the message names the field"),
            **errors("401", "403", "413", "429", "503"),
        },
        "security": [{}, {"bearer": []}],  # public job types need nothing; protected ones need the token
    }


def list_jobs() -> dict[str, Any]:
    """GET /api/jobs."""
    return {
        "operationId": "listJobs",
        "summary": "Recent jobs, newest first, filtered and paginated",
        "parameters": [
            query_param("status", {"type": "string", "enum": STATUSES}, "Only jobs in this status"),
            query_param("type", {"type": "string"}, "Only jobs of this type"),
            query_param("limit", {"type": "integer", "minimum": 1, "maximum": lifecycle.LIST_MAX_LIMIT,
                                  "default": lifecycle.LIST_DEFAULT_LIMIT}, "Page size"),
            query_param("cursor", {"type": "string"}, "The `next_cursor` of the previous page"),
        ],
        "responses": {
            "200": response(f"A page; each request examines at most {lifecycle.LIST_SCAN_BUDGET} index entries, "
                            "so a rare filter may give a short page with a next_cursor", "JobList"),
            "422": error("Bad status, limit or cursor"),
            **errors("401", "403", "503"),
        },
        "security": [{"bearer": []}],  # everyone's jobs: only for the API token's holder
    }


def get_job() -> dict[str, Any]:
    """GET /api/jobs/{job_id}."""
    wait = {"type": "number", "minimum": 0, "maximum": lifecycle.MAX_WAIT}
    return {
        "operationId": "getJob",
        "summary": "A job's status, progress, result and error; optionally long-poll until it ends",
        "parameters": [
            path_param("job_id", "The job's id"),
            query_param("wait", wait, "Answer when the job ends or after this many seconds, whichever is first"),
        ],
        "responses": {
            "200": response("The job", "Job"),
            "404": error("Unknown or expired job id"),
            "422": error("wait is not a number of seconds in range"),
            **errors("503"),
        },
    }


def cancel_job() -> dict[str, Any]:
    """POST /api/jobs/{job_id}/cancel."""
    return {
        "operationId": "cancelJob",
        "summary": "Cancel a waiting job, or stop a running one",
        "parameters": [path_param("job_id", "The job's id")],
        "requestBody": {"required": False, "content": json_content(
            {"type": "object", "description": "Nothing is read: send {} or no body, with the JSON Content-Type"})},
        "responses": {
            "200": response("The job, now canceled (it was waiting) or stopped (it was running)", "Job"),
            "404": error("Unknown or expired job id"),
            "409": error("The job already ended (code not_cancelable)"),
            **errors("429", "503"),
        },
    }


def submit_batch(defs: dict[str, Any]) -> dict[str, Any]:
    """POST /api/batches."""
    bodies = [batch_submission(job_type, defs) for job_type in batches.batchable()]
    return {
        "operationId": "submitBatch",
        "summary": "Enqueue one job per item and an aggregate that runs when every item has ended",
        "requestBody": {"required": True, "content": json_content({"oneOf": bodies})},
        "responses": {
            "202": response("Accepted; Location names the batch", "Batch", LOCATION),
            "422": error("Unknown or unbatchable type, bad priority, or an invalid item; the message names it"),
            **errors("400", "413", "429", "503"),
        },
    }


def get_batch() -> dict[str, Any]:
    """GET /api/batches/{batch_id}."""
    return {
        "operationId": "getBatch",
        "summary": "A batch's status, its items' statuses and the aggregate result",
        "parameters": [path_param("batch_id", "The batch's id")],
        "responses": {"200": response("The batch", "Batch"), "404": error("Unknown or expired batch id"),
                      **errors("503")},
    }


def api_paths(defs: dict[str, Any]) -> dict[str, Any]:
    """Every /api operation, by path and method."""
    paths: dict[str, Any] = {
        "/api/jobs": {"post": submit_job(defs), "get": list_jobs()},
        "/api/jobs/{job_id}": {"get": get_job()},
        "/api/jobs/{job_id}/cancel": {"post": cancel_job()},
        "/api/batches": {"post": submit_batch(defs)},
        "/api/batches/{batch_id}": {"get": get_batch()},
    }
    for path, operations in _EXTRA_PATHS.items():
        paths.setdefault(path, {}).update(copy.deepcopy(operations))  # document() may add to their responses
    return paths


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    defs: dict[str, Any] = {}
    paths = api_paths(defs)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "flask-rq-stack API", "version": "1"},
        "paths": paths,
        "components": {"schemas": {**SCHEMAS, **defs}},
    }
    for operations in paths.values():  # a wrong Authorization header is refused everywhere
        for method, operation in operations.items():
            operation["responses"].update(errors("401", *(("415",) if method == "post" else ())))
            operation.setdefault("security", [{}, {"bearer": []}])
    doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc


@bp.get("/api/openapi.json")
def openapi_json():
    """The OpenAPI document (public)."""
    return jsonify(document())
