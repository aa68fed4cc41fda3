"""Forms generated from a job's schema: widgets, constraints, parsing and error mapping (no Redis needed)."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import Field

from engine import catalog
from web import forms

Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]+$")]


def send_note(
    to: Annotated[list[Email], Field(min_length=1, max_length=50)],
    subject: Annotated[str, Field(min_length=1, max_length=200, description="One line.")],
    body: Annotated[str, Field(max_length=100_000)] = "",
    urgent: bool = False,
    copies: Annotated[int, Field(ge=1, le=5)] = 1,
    kind: Literal["plain", "html"] = "plain",
    reply_url: str | None = None,
) -> dict:
    """Send a note (a stand-in for send_email: the form code must not know any job type)."""
    return {}


NOTE = catalog.job_type(send_note)


def by_name(job_type: catalog.JobType) -> dict[str, forms.FormField]:
    return {f.name: f for f in forms.fields_for(job_type)}


def test_fields_follow_the_signature_order():
    names = [f.name for f in forms.fields_for(NOTE)]
    assert names == ["to", "subject", "body", "urgent", "copies", "kind", "reply_url"]


@pytest.mark.parametrize(
    ("name", "widget", "required", "default"),
    [
        ("to", "list", True, ""),
        ("subject", "text", True, ""),
        ("body", "textarea", False, ""),
        ("urgent", "checkbox", False, ""),
        ("copies", "number", False, "1"),
        ("kind", "select", False, "plain"),
        ("reply_url", "url", False, ""),
    ],
)
def test_each_schema_type_gets_its_widget(name, widget, required, default):
    field = by_name(NOTE)[name]
    assert (field.widget, field.required, field.default) == (widget, required, default)


def test_constraints_become_html_attributes_and_help():
    fields = by_name(NOTE)
    assert fields["subject"].attrs == {"minlength": 1, "maxlength": 200}
    assert fields["subject"].help == "One line."
    assert fields["copies"].attrs == {"min": 1, "max": 5, "step": 1}
    assert fields["copies"].help == "From 1 to 5."
    assert fields["body"].help == "Up to 100,000 characters."
    assert "commas or new lines" in fields["to"].help
    assert fields["kind"].choices == ("plain", "html")


@pytest.mark.parametrize(
    ("name", "title", "expected"),
    [("url", None, "URL"), ("reply_url", "Reply Url", "Reply URL"), ("top", "Top words", "Top words"),
     ("count_words_at_url", None, "Count words at URL")],
)
def test_labels_use_real_titles_and_read_automatic_ones_aloud(name, title, expected):
    assert forms.label(name, title) == expected


def test_count_words_form_is_generated_from_its_schema():
    fields = by_name(catalog.get("count_words_at_url"))
    assert (fields["url"].widget, fields["url"].label, fields["url"].required) == ("url", "Page URL", True)
    assert fields["url"].attrs == {"minlength": 1, "maxlength": 2048}
    assert (fields["top"].widget, fields["top"].label, fields["top"].default) == ("number", "Top words", "20")
    assert fields["top"].attrs == {"min": 1, "max": 100, "step": 1}


def test_parse_turns_form_text_into_params_that_validate():
    form = {"to": "a@x.org, b@y.org\n\nc@z.org,", "subject": "  Hi  ", "body": "", "copies": "3", "kind": "html"}
    params = forms.parse(forms.fields_for(NOTE), form)
    assert params == {"to": ["a@x.org", "b@y.org", "c@z.org"], "subject": "Hi", "urgent": False, "copies": "3",
                      "kind": "html"}
    assert NOTE.validate(params)["copies"] == 3


def test_textarea_keeps_its_whitespace_and_checkbox_reads_on():
    params = forms.parse(forms.fields_for(NOTE), {"body": "  line one\n  line two\n", "urgent": "on"})
    assert params["body"] == "  line one\n  line two\n"
    assert params["urgent"] is True


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"subject": "Hi"}, "to", "Please fill in this field."),
        ({"to": "a@x.org, nope", "subject": "Hi"}, "to", "Entry 2: String should match pattern"),
        ({"to": "a@x.org", "subject": "x" * 201}, "subject", "String should have at most 200 characters"),
        ({"to": "a@x.org", "subject": "Hi", "copies": "many"}, "copies", "Enter a whole number."),
        ({"to": "a@x.org", "subject": "Hi", "copies": "9"}, "copies", "Input should be less than or equal to 5"),
        ({"to": "a@x.org", "subject": "Hi", "kind": "pdf"}, "kind", "Input should be 'plain' or 'html'"),
    ],
)
def test_validation_errors_land_on_their_field(form, field, message):
    with pytest.raises(catalog.InvalidParams) as raised:
        NOTE.validate(forms.parse(forms.fields_for(NOTE), form))
    errors = forms.field_errors(raised.value.errors)
    assert errors[field].startswith(message)


def test_form_level_errors_have_their_own_key():
    assert forms.field_errors({"params": "must be a JSON object"}) == {"form": "Must be a JSON object"}


@pytest.mark.parametrize(("value", "ok"), [("high", True), ("default", True), ("low", True), ("urgent", False),
                                           ("", False)])
def test_priority_must_be_a_queue(value, ok):
    assert (forms.priority_error(value) is None) is ok


def test_no_catalogued_job_uses_a_name_the_form_reserves():
    for job_type in catalog.CATALOG.values():
        assert not {f.name for f in forms.fields_for(job_type)} & forms.RESERVED, job_type.name
