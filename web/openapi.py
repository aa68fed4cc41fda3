"""The OpenAPI 3.1 document for /api, served at /api/openapi.json and built from code.

Each catalogued job type contributes its params schema (pydantic's ``model_json_schema``), so a new job
appears here by itself. Another endpoint is added with ``register_path(path, method, operation)``.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Blueprint, jsonify

from jobs import catalog
from jobs.queues import TERMINAL
from web import state

bp = Blueprint("openapi", __name__)

STATUSES = sorted({"queued", "scheduled", "deferred", "started", *TERMINAL})
ERROR_CODES = {
    "400": "Malformed JSON, or not application/json",
    "401": "Missing or wrong bearer token (only when API_TOKEN is set)",
    "404": "Unknown or expired job id",
    "405": "Method not allowed",
    "413": "Body over 64 KB",
    "415": "Unsupported media type",
    "422": "Unknown job type or invalid params",
    "429": "Too many submissions; see Retry-After",
    "503": "Redis unavailable",
}
TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
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
        "error": {
            "oneOf": [
                {"type": "null"},
                {"type": "object", "required": ["type", "message"],
                 "properties": {"type": {"type": "string"}, "message": {"type": "string"}}},
            ]
        },
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
_EXTRA_PATHS: dict[str, dict[str, Any]] = {}


def register_path(path: str, method: str, operation: dict[str, Any]) -> None:
    """Add an operation (another issue's endpoint) to the document."""
    _EXTRA_PATHS.setdefault(path, {})[method.lower()] = operation


def errors(*codes: str) -> dict[str, Any]:
    """Response objects for the given error statuses, all in the one error shape."""
    ref = {"$ref": "#/components/schemas/Error"}
    return {code: {"description": ERROR_CODES[code], "content": {"application/json": {"schema": ref}}}
            for code in codes}


def job_submission(job_type: catalog.JobType, defs: dict[str, Any]) -> dict[str, Any]:
    """The request body for one job type; its params schema's $defs move to components."""
    params = copy.deepcopy(job_type.schema.model_json_schema(ref_template="#/components/schemas/{model}"))
    defs.update(params.pop("$defs", {}))
    return {
        "type": "object",
        "title": job_type.name,
        "description": job_type.description,
        "required": ["type"],
        "additionalProperties": False,
        "properties": {"type": {"const": job_type.name}, "params": params},
    }


def document(token_required: bool = False) -> dict[str, Any]:
    """The whole OpenAPI document."""
    defs: dict[str, Any] = {}
    submissions = [job_submission(job_type, defs) for job_type in catalog.CATALOG.values()]
    job_response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}
    auth = ("401",) if token_required else ()
    paths: dict[str, Any] = {
        "/api/jobs": {
            "post": {
                "operationId": "submitJob",
                "summary": "Validate and enqueue a job",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": submissions}}}},
                "responses": {
                    "202": {**job_response, "description": "Accepted; Location names the job",
                            "headers": {"Location": {"schema": {"type": "string"}}}},
                    **errors("400", "413", "415", "422", "429", "503", *auth),
                },
            }
        },
        "/api/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "A job's status, progress, result and error",
                "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {**job_response, "description": "The job"}, **errors("404", "503", *auth)},
            }
        },
    }
    for path, operations in _EXTRA_PATHS.items():
        paths.setdefault(path, {}).update(operations)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "flask-rq-stack API", "version": "1"},
        "paths": paths,
        "components": {"schemas": {"Job": JOB, "Error": ERROR, **defs}},
    }
    if token_required:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


@bp.get("/api/openapi.json")
def openapi_json():
    """The OpenAPI document (public, even when the API needs a token)."""
    return jsonify(document(token_required=bool(state.settings().api_token)))
