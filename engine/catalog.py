"""The job catalogue: public job type names → function and parameter schema. It is the worker's allow-list.

A job's schema is its signature: every parameter is typed (``Annotated`` with pydantic constraints where
needed), and the catalogue builds a pydantic model from it. Adding a job means writing the function and
adding it to ``CATALOG`` below.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from engine.settings import diagnostic_jobs_enabled
from jobs.mail import send_email
from jobs.wordcount import count_words_at_url
from jobs.wordcount.aggregate import aggregate_word_counts


class UnknownJobType(LookupError):
    """No job of that name is in the catalogue."""


class InvalidParams(ValueError):
    """Params do not match the job's schema; ``errors`` maps a field path to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


@dataclass(frozen=True)
class JobType:
    """One catalogued job: its public name, function, schema and run options."""

    name: str
    func: Callable[..., Any]
    schema: type[BaseModel]
    retry_intervals: tuple[int, ...] | None = None  # None: RETRY_INTERVALS from the settings; () never retries
    timeout: int | None = None
    description: str = field(default="")
    access: str = "public"  # "public": anyone may submit it; "protected": the web side asks for a credential

    @property
    def func_path(self) -> str:
        """The dotted path RQ stores in the queue entry; the worker runs only these."""
        return f"{self.func.__module__}.{self.func.__qualname__}"

    def describe(self, params: Mapping[str, Any], width: int = 60) -> str:
        """A short readable label for the dashboard: ``name(key=value, …)`` with long values cut."""
        parts = []
        for key, value in params.items():
            text = json.dumps(value, ensure_ascii=False)
            parts.append(f"{key}={text if len(text) <= width else text[: width - 1] + '…'}")
        return f"{self.name}({', '.join(parts)})"

    def validate(self, params: Any) -> dict[str, Any]:
        """Return params coerced to the schema, as JSON primitives, or raise InvalidParams."""
        if not isinstance(params, Mapping):
            raise InvalidParams({"params": "must be a JSON object"})
        try:
            return self.schema.model_validate(dict(params)).model_dump(mode="json")
        except ValidationError as exc:
            raise InvalidParams(_field_errors(exc)) from None


def job_type(func: Callable[..., Any], **options: Any) -> JobType:
    """Catalogue entry for ``func``; its typed signature is its schema."""
    hints = get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.name not in hints:
            raise TypeError(f"{func.__name__}: parameter {param.name!r} needs a type annotation")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (hints[param.name], default)
    schema = create_model(
        f"{func.__name__}_params", __config__=ConfigDict(extra="forbid", title=func.__name__), **fields
    )
    doc = (inspect.getdoc(func) or "").splitlines()
    return JobType(func.__name__, func, schema, description=doc[0] if doc else "", **options)


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "params"
        message = error["msg"].removeprefix("Value error, ")  # pydantic's prefix for our own validators
        if error["type"] == "extra_forbidden":
            message = "unknown parameter"
        errors.setdefault(f"params.{path}" if error["loc"] else "params", message)
    return errors


CATALOG: dict[str, JobType] = {
    t.name: t
    for t in (
        job_type(count_words_at_url),
        # SMTP greylisting wants minutes; protected: an open form must not make us a mail relay
        job_type(send_email, retry_intervals=(30, 120, 600, 1800, 3600), access="protected"),
    )
}
# Internal jobs: workers run them, but they cannot be submitted by name (the batch API enqueues them).
INTERNAL: dict[str, JobType] = {
    t.name: t for t in (job_type(aggregate_word_counts, retry_intervals=()),)
}
if diagnostic_jobs_enabled():  # benchmarks and fault-injection tests only
    from engine import diagnostics

    _diag = (diagnostics.noop, diagnostics.sleep, diagnostics.spin, diagnostics.crash_process, diagnostics.hold_memory)
    CATALOG.update({t.name: t for t in (job_type(f, retry_intervals=()) for f in _diag)})
BY_FUNC_PATH: dict[str, JobType] = {t.func_path: t for t in (*CATALOG.values(), *INTERNAL.values())}


def get(name: Any) -> JobType:
    """The catalogued job called ``name``, or UnknownJobType."""
    if not isinstance(name, str) or name not in CATALOG:
        known = ", ".join(sorted(CATALOG))
        raise UnknownJobType(f"unknown job type {name!r}; known types: {known}")
    return CATALOG[name]
