"""The job catalogue: schemas come from typed signatures and validate at the door."""

import pytest

from engine import catalog
from jobs.wordcount import count_words_at_url


def test_count_words_is_catalogued():
    job_type = catalog.get("count_words_at_url")
    assert job_type.func is count_words_at_url
    assert job_type.func_path == "jobs.wordcount.count_words_at_url"
    assert catalog.BY_FUNC_PATH[job_type.func_path] is job_type
    assert job_type.description


def test_defaults_are_filled_in():
    params = catalog.get("count_words_at_url").validate({"url": "https://example.com/"})
    assert params == {"url": "https://example.com/", "top": 20}


@pytest.mark.parametrize("name", ["nope", "", None, 3, "os.system", "jobs.wordcount.count_words_at_url"])
def test_unknown_types(name):
    with pytest.raises(catalog.UnknownJobType):
        catalog.get(name)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "params.url"),
        ({"url": ""}, "params.url"),
        ({"url": 42}, "params.url"),
        ({"url": "ftp://example.com/"}, "params.url"),
        ({"url": "javascript:alert(1)"}, "params.url"),
        ({"url": "not a url"}, "params.url"),
        ({"url": "https://example.com/" + "a" * 2048}, "params.url"),
        ({"url": "https://example.com/", "top": 0}, "params.top"),
        ({"url": "https://example.com/", "top": 101}, "params.top"),
        ({"url": "https://example.com/", "top": "many"}, "params.top"),
        ({"url": "https://example.com/", "top": 2.5}, "params.top"),
        ({"url": "https://example.com/", "extra": 1}, "params.extra"),
        ([], "params"),
        ("https://example.com/", "params"),
    ],
)
def test_invalid_params_name_the_field(params, field):
    with pytest.raises(catalog.InvalidParams) as info:
        catalog.get("count_words_at_url").validate(params)
    assert field in info.value.errors


def test_unannotated_parameter_is_rejected():
    def untyped(x):
        """No annotation."""

    with pytest.raises(TypeError, match="annotation"):
        catalog.job_type(untyped)
