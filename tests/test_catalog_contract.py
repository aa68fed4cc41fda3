"""Every catalogued job, present and future, is ready for the API, form, CLI and OpenAPI generators."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine import catalog

JOB_TYPES = sorted(catalog.CATALOG.values(), key=lambda t: t.name)


def unbounded(schema: dict[str, Any], path: str) -> list[str]:
    """Paths of strings without maxLength and arrays without maxItems: inputs a client could make huge."""
    found = []
    for option in schema.get("anyOf", []):
        found += unbounded(option, path)
    kind = schema.get("type")
    if kind == "string" and "maxLength" not in schema and "enum" not in schema:
        found.append(path)
    if kind == "array":
        if "maxItems" not in schema:
            found.append(path)
        found += unbounded(schema.get("items", {}), f"{path}.items")
    return found


@pytest.mark.parametrize("job_type", JOB_TYPES, ids=lambda t: t.name)
def test_job_is_described_and_resolvable(job_type: catalog.JobType):
    assert job_type.name.isidentifier()
    assert job_type.description, f"{job_type.name}: give the function a one-line docstring (the UI shows it)"
    assert catalog.BY_FUNC_PATH[job_type.func_path] is job_type
    assert all(interval > 0 for interval in job_type.retry_intervals or ())


@pytest.mark.parametrize("job_type", JOB_TYPES, ids=lambda t: t.name)
def test_every_input_is_bounded(job_type: catalog.JobType):
    schema = job_type.schema.model_json_schema()
    json.dumps(schema)  # the OpenAPI document and the form generator read it as JSON
    assert schema.get("additionalProperties") is False
    problems = [p for name, prop in schema["properties"].items() for p in unbounded(prop, name)]
    assert not problems, f"{job_type.name}: add Field(max_length=…) or max items to {', '.join(problems)}"
