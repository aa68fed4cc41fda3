"""The job catalogue: every job type, registered where it is defined by the ``@job`` decorator. It is the worker's
allow-list.

A job's schema is its signature: every parameter is typed (``Annotated`` with pydantic constraints where needed),
and the catalogue builds a pydantic model from it. The engine finds jobs by importing the ``jobs`` package and every
module in it by name, the first time the catalogue is read, so no central list names them and ``jobs → engine`` is
the only import arrow between the two.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from engine.settings import diagnostic_jobs_enabled

JOBS_PACKAGE = "jobs"
DIAGNOSTICS_PACKAGE = "tests.diagnostics"  # jobs for benchmarks and fault tests: tooling, not the product
Access = Literal["public", "protected"]
F = TypeVar("F", bound=Callable[..., Any])


class UnknownJobType(LookupError):
    """No job of that name is in the catalogue."""


class InvalidParams(ValueError):
    """Params do not match the job's schema; ``errors`` maps a field path to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


@dataclass(frozen=True)
class JobType:
    """One catalogued job: its public name, function, schema, run options and how people see it."""

    name: str
    func: Callable[..., Any]
    schema: type[BaseModel]
    retry_intervals: tuple[int, ...] | None = None  # None: RETRY_INTERVALS from the settings; () never retries
    timeout: int | None = None  # None: JOB_TIMEOUT from the settings
    description: str = ""
    access: Access = "public"  # protected: submitting it over HTTP needs a credential
    internal: bool = False  # run by workers but never submitted by name (a batch's aggregate)
    diagnostic: bool = False  # catalogued only with DIAGNOSTIC_JOBS on (benchmarks, fault tests)
    label: str = ""  # the form's heading ("": the name read aloud)
    submit_label: str = "Start job"
    title: str = ""  # the job page's heading ("": the name read aloud)
    stages: Mapping[str, str] = field(default_factory=dict)  # progress stage → words for the progress bar
    result_template: Path | None = None  # a Jinja template beside the job that shows its result
    batch_aggregate: str | None = None  # the internal job that sums up a batch of this type
    settings: Callable[[], Any] | None = None  # reads and validates the job's own settings (see check_settings)

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
    options.setdefault("description", doc[0] if doc else "")
    return JobType(func.__name__, func, schema, **options)


_registered: dict[str, JobType] = {}


def job(
    *,
    retry: tuple[int, ...] | None = None,
    timeout: int | None = None,
    access: Access = "public",
    internal: bool = False,
    diagnostic: bool = False,
    label: str = "",
    submit_label: str = "Start job",
    title: str = "",
    stages: Mapping[str, str] | None = None,
    result_template: str | None = None,
    batch_aggregate: Callable[..., Any] | None = None,
    settings: Callable[[], Any] | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as a job type named after it; returns the function unchanged.

    ``retry``: delays in seconds between attempts (None: RETRY_INTERVALS; () never retries). ``access``: "protected"
    types need a credential to be submitted over HTTP. ``result_template``: a file beside the job's module that
    shows its result on the job page. ``batch_aggregate``: the internal job that sums up a batch of this type.
    ``settings``: a callable that reads the job's own settings, so start-up can check them with the rest.
    """
    if access not in ("public", "protected"):
        raise ValueError(f"access must be 'public' or 'protected', got {access!r}")

    def register(func: F) -> F:
        options: dict[str, Any] = {
            "retry_intervals": retry, "timeout": timeout, "access": access, "internal": internal,
            "diagnostic": diagnostic, "submit_label": submit_label, "stages": dict(stages or {}),
            "batch_aggregate": batch_aggregate.__name__ if batch_aggregate else None, "settings": settings,
            "label": label, "title": title,
        }
        if result_template is not None:
            options["result_template"] = Path(inspect.getfile(func)).parent / result_template
        entry = job_type(func, **options)
        known = _registered.get(entry.name)
        if known is not None and known.func_path != entry.func_path:
            raise ValueError(f"two jobs are named {entry.name!r}: {known.func_path} and {entry.func_path}")
        _registered[entry.name] = entry
        return func

    return register


@dataclass
class _Tables:
    public: dict[str, JobType]
    internal: dict[str, JobType]
    by_path: dict[str, JobType]


_tables: _Tables | None = None
_lock = threading.Lock()


def load() -> _Tables:
    """Import the jobs package and every module in it (once), then index what registered itself."""
    global _tables
    if _tables is not None:
        return _tables
    with _lock:
        if _tables is None:
            for name in _job_modules(JOBS_PACKAGE):
                importlib.import_module(name)
            diagnostics = diagnostic_jobs_enabled()
            if diagnostics:
                importlib.import_module(DIAGNOSTICS_PACKAGE)
            chosen = [t for t in _registered.values() if diagnostics or not t.diagnostic]
            _tables = _Tables(
                public={t.name: t for t in chosen if not t.internal},
                internal={t.name: t for t in chosen if t.internal},
                by_path={t.func_path: t for t in chosen},
            )
    return _tables


def _job_modules(package: str) -> Iterator[str]:
    """The package and all its submodules, by dotted name, without importing anything but the package."""
    root = importlib.import_module(package)
    yield package
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        yield info.name


class _Table(MutableMapping[str, JobType]):
    """A view of one of the catalogue's indexes that loads the jobs on first use."""

    def __init__(self, index: str):
        self._index = index

    def _data(self) -> dict[str, JobType]:
        return getattr(load(), self._index)

    def __getitem__(self, key: str) -> JobType:
        return self._data()[key]

    def __setitem__(self, key: str, value: JobType) -> None:
        self._data()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


CATALOG: MutableMapping[str, JobType] = _Table("public")  # types that can be submitted by name
INTERNAL: MutableMapping[str, JobType] = _Table("internal")  # types only the engine enqueues
BY_FUNC_PATH: MutableMapping[str, JobType] = _Table("by_path")  # everything a worker may run


def get(name: Any) -> JobType:
    """The catalogued job called ``name``, or UnknownJobType."""
    if not isinstance(name, str) or name not in CATALOG:
        known = ", ".join(sorted(CATALOG))
        raise UnknownJobType(f"unknown job type {name!r}; known types: {known}")
    return CATALOG[name]


def lookup(name: str) -> JobType | None:
    """Any catalogued job called ``name``, internal ones included (to show a job, not to submit one)."""
    return CATALOG.get(name) or INTERNAL.get(name)


def default_type() -> JobType:
    """The job type forms and the CLI offer first: the first that anyone may submit, else the first."""
    types = list(CATALOG.values())
    return next((t for t in types if t.access == "public"), types[0])


def check_settings() -> None:
    """Read every job's own settings now, so a bad value stops start-up (ConfigError names the variable)."""
    for entry in load().by_path.values():
        if entry.settings is not None:
            entry.settings()


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "params"
        message = error["msg"].removeprefix("Value error, ")  # pydantic's prefix for our own validators
        if error["type"] == "extra_forbidden":
            message = "unknown parameter"
        errors.setdefault(f"params.{path}" if error["loc"] else "params", message)
    return errors

