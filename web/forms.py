"""HTML forms generated from a job type's parameter schema, and form posts turned back into params.

The catalogue's pydantic model is the single source of truth: its JSON schema gives each field's type,
constraints, default, title and description, so a new job type gets a working form with no template work.
Validation stays server-side (``JobType.validate``); the HTML attributes only help the browser and the reader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine import catalog
from engine.settings import QUEUE_NAMES

# Form keys the page itself uses; a job parameter with one of these names would collide (a test checks none does).
RESERVED = frozenset({"type", "priority", "csrf_token"})
PRIORITIES = {"high": "High", "default": "Normal", "low": "Low"}
TEXTAREA_OVER = 500  # strings allowed to be longer than this get a textarea
_ACRONYMS = {"url": "URL", "urls": "URLs", "id": "ID", "html": "HTML", "api": "API"}
_LIST_SPLIT = re.compile(r"[,\n]")
_MESSAGES = {
    "Field required": "Please fill in this field.",
    "Input should be a valid integer, unable to parse string as an integer": "Enter a whole number.",
    "Input should be a valid number, unable to parse string as a number": "Enter a number.",
}


@dataclass(frozen=True)
class FormField:
    """One input: its name, label, widget and the HTML attributes that mirror the schema's constraints."""

    name: str
    label: str
    widget: str  # url | email | number | text | textarea | list | checkbox | select
    required: bool
    default: str = ""
    help: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    choices: tuple[str, ...] = ()


def fields_for(job_type: catalog.JobType) -> list[FormField]:
    """The inputs for ``job_type``, in the order of its signature."""
    schema = job_type.schema.model_json_schema()
    definitions = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    return [
        _field(name, _resolve(prop, definitions), name in required)
        for name, prop in schema.get("properties", {}).items()
    ]


def _resolve(prop: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """Follow a $ref and unwrap ``X | None``, keeping the outer title, description and default."""
    outer = {key: prop[key] for key in ("title", "description", "default") if key in prop}
    if "$ref" in prop:
        prop = definitions.get(prop["$ref"].rsplit("/", 1)[-1], {})
    options = [option for option in prop.get("anyOf", ()) if option.get("type") != "null"]
    if len(options) == 1:
        prop = _resolve(options[0], definitions)
    return {**prop, **outer}


def _field(name: str, prop: dict[str, Any], required: bool) -> FormField:
    widget, attrs = _widget(name, prop)
    choices = tuple(str(choice) for choice in prop.get("enum", ()))
    default = prop.get("default")
    if isinstance(default, list):
        default = ", ".join(str(item) for item in default)
    elif isinstance(default, bool):
        default = "on" if default else ""
    return FormField(
        name=name,
        label=label(name, prop.get("title")),
        widget="select" if choices else widget,
        required=required,
        default="" if default is None else str(default),
        help=" ".join(filter(None, (prop.get("description"), _constraint_help(widget, prop)))),
        attrs=attrs,
        choices=choices,
    )


def _widget(name: str, prop: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The input kind and its HTML constraint attributes."""
    kind = prop.get("type")
    if kind == "boolean":
        return "checkbox", {}
    if kind in ("integer", "number"):
        attrs = {"min": prop.get("minimum"), "max": prop.get("maximum"), "step": 1 if kind == "integer" else "any"}
        return "number", {key: value for key, value in attrs.items() if value is not None}
    if kind == "array":
        return "list", {}
    attrs = {key: prop[src] for key, src in (("minlength", "minLength"), ("maxlength", "maxLength")) if src in prop}
    fmt = prop.get("format", "")
    if fmt in ("uri", "url") or name == "url" or name.endswith("_url"):
        return "url", attrs
    if fmt == "email" or name == "email" or name.endswith("_email"):
        return "email", attrs
    if prop.get("maxLength", 0) > TEXTAREA_OVER:
        return "textarea", attrs
    return "text", attrs


def label(name: str, title: str | None = None) -> str:
    """The schema's title, unless it is pydantic's automatic one ('Url'): then the name, read aloud."""
    automatic = name.replace("_", " ").title()
    if title and title != automatic:
        return title
    words = [_ACRONYMS.get(word, word) for word in name.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _constraint_help(widget: str, prop: dict[str, Any]) -> str:
    if widget == "number" and "minimum" in prop and "maximum" in prop:
        return f"From {prop['minimum']} to {prop['maximum']}."
    if widget == "list":
        limit = f" (up to {prop['maxItems']})" if "maxItems" in prop else ""
        return f"Separate entries with commas or new lines{limit}."
    if widget == "url":
        return "An http:// or https:// address."
    if widget == "textarea" and "maxLength" in prop:
        return f"Up to {prop['maxLength']:,} characters."
    return ""


def form_values(fields: list[FormField], form: Mapping[str, str]) -> dict[str, str]:
    """What the user typed, field by field, to show again next to error messages."""
    return {f.name: form.get(f.name, "") for f in fields}


def parse(fields: list[FormField], form: Mapping[str, str]) -> dict[str, Any]:
    """Form text → params for ``JobType.validate``; empty inputs are left out so defaults apply."""
    params: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f.name, "")
        if f.widget == "checkbox":
            params[f.name] = raw != ""
        elif f.widget == "list":
            items = [item.strip() for item in _LIST_SPLIT.split(raw) if item.strip()]
            if items:
                params[f.name] = items
        else:
            value = raw if f.widget == "textarea" else raw.strip()
            if value.strip():
                params[f.name] = value
    return params


def field_errors(errors: Mapping[str, str]) -> dict[str, str]:
    """InvalidParams' ``params.<field>[.<index>]`` keys → one friendly message per form field."""
    by_field: dict[str, str] = {}
    for key, message in errors.items():
        parts = key.split(".")
        name = parts[1] if len(parts) > 1 else "form"
        text = friendly(message)
        if len(parts) > 2 and parts[2].isdigit():
            text = f"Entry {int(parts[2]) + 1}: {text}"
        by_field.setdefault(name, text)
    return by_field


def friendly(message: str) -> str:
    """Pydantic's wording, made plainer where it reads like a stack trace."""
    message = _MESSAGES.get(message, message).removeprefix("Value error, ")
    return message[:1].upper() + message[1:]


def priority_error(value: str) -> str | None:
    """A message when ``value`` is not one of the queues, else None."""
    if value in QUEUE_NAMES:
        return None
    return f"Choose one of: {', '.join(PRIORITIES.values())}."
