"""Every catalogued job, present and future, is ready for the API, form, CLI and OpenAPI generators."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, create_model

from engine import catalog

JOB_TYPES = sorted(catalog.CATALOG.values(), key=lambda t: t.name)


def unbounded(schema: dict[str, Any], path: str, defs: dict[str, Any], seen: frozenset[str] = frozenset()) -> list[str]:
    """Paths of strings without maxLength, arrays without maxItems and maps without maxProperties: inputs a client
    could make huge. Follows $ref (into ``defs``), nested models, map keys and values, and every *Of branch."""
    found = []
    ref = schema.get("$ref")
    if ref is not None:
        name = ref.removeprefix("#/$defs/")
        if name not in seen:  # a recursive model is checked once
            found += unbounded(defs[name], path, defs, seen | {name})
    for combinator in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(combinator, []):
            found += unbounded(option, path, defs, seen)
    kind = schema.get("type")
    if kind == "string" and "maxLength" not in schema and "enum" not in schema and "const" not in schema:
        found.append(path)
    if kind == "array":
        if "maxItems" not in schema:
            found.append(path)
        for index, item in enumerate(schema.get("prefixItems", [])):
            found += unbounded(item, f"{path}[{index}]", defs, seen)
        found += unbounded(schema.get("items") or {}, f"{path}.items", defs, seen)
    for name, prop in schema.get("properties", {}).items():
        found += unbounded(prop, f"{path}.{name}", defs, seen)
    values = schema.get("additionalProperties")
    if isinstance(values, dict):  # a map: its size, its keys and its values
        if "maxProperties" not in schema:
            found.append(path)
        found += unbounded({"type": "string", **schema.get("propertyNames", {})}, f"{path}.<key>", defs, seen)
        found += unbounded(values, f"{path}.<value>", defs, seen)
    return found


def problems_in(model: type[BaseModel]) -> list[str]:
    """The unbounded inputs of a job's parameter model."""
    schema = model.model_json_schema()
    return [p for name, prop in schema["properties"].items() for p in unbounded(prop, name, schema.get("$defs", {}))]


class Inner(BaseModel):
    note: str


class Tree(BaseModel):
    label: Annotated[str, Field(max_length=10)]
    children: Annotated[list[Tree], Field(max_length=5)] = []


@pytest.mark.parametrize(("annotation", "found"), [
    (str, ["field"]),
    (Annotated[str, Field(max_length=5)] | None, []),
    (Annotated[list[str], Field(max_length=3)], ["field.items"]),
    (Inner, ["field.note"]),  # a nested model, reached through $ref
    (Annotated[list[Inner], Field(max_length=3)], ["field.items.note"]),
    (dict[Annotated[str, Field(max_length=5)], int], ["field"]),
    (Annotated[dict[str, int], Field(max_length=3)], ["field.<key>"]),
    (Annotated[dict[Annotated[str, Field(max_length=5)], Inner], Field(max_length=3)], ["field.<value>.note"]),
    (tuple[str, Annotated[str, Field(max_length=5)]], ["field[0]"]),
    (Tree, []),  # recursive, and bounded
    (Literal["a", "b"], []),
])
def test_the_bound_check_finds_what_hides_in_refs_nested_models_and_maps(annotation, found):
    model = create_model("Params", field=(annotation, ...))
    assert problems_in(model) == found


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
    problems = problems_in(job_type.schema)
    assert not problems, f"{job_type.name}: add Field(max_length=…) or max items to {', '.join(problems)}"
