"""Each destination type against good, bad and empty input."""

from __future__ import annotations

import pytest

from field_mapping.coercion import CoercionError, is_empty, leaf_paths, set_path
from integrations.destinations.iterable.rules import coerce

GOOD = [
    ("string", "Ada", "Ada"),
    ("string", 42, "42"),
    ("string", True, "true"),
    ("long", 42, 42),
    ("long", "42", 42),
    ("long", 42.0, 42),
    ("long", "1,000", 1000),
    ("double", "12,500.5", 12500.5),  # commas that group thousands
    ("double", 3, 3.0),
    ("double", "3.5", 3.5),
    ("boolean", True, True),
    ("boolean", "yes", True),
    ("boolean", "0", False),
    ("boolean", 1, True),
    ("date", "2024-02-29", "2024-02-29 00:00:00 +00:00"),
    ("date", "2024-02-29T13:45:00+02:00", "2024-02-29 11:45:00 +00:00"),
    ("date", "2024-02-29T13:45:00Z", "2024-02-29 13:45:00 +00:00"),
    ("date", "2016-08-02 18:53:45 +00:00", "2016-08-02 18:53:45 +00:00"),  # Iterable's own format
    ("object", {"a": 1}, {"a": 1}),
    ("Boolean", "true", True),  # Iterable's capitalisation varies (reference 3)
    ("long", [1, "2"], [1, 2]),  # arrays keep the element type
]
BAD = [
    ("long", "ten", "f: 'ten' is not a number"),
    ("double", "1,5", "ambiguous: write decimals with a dot"),  # never read as 15
    ("long", "1_000", "is not a number"),
    ("long", "9" * 5000, "too long to be a number"),  # int() itself would refuse past 4,300 digits
    ("long", 3.5, "not a whole number"),
    ("long", True, "is true/false, not a number"),
    ("long", 2**70, "too large"),
    ("double", "NaN", "is not a number"),
    ("double", "1e999", "not a finite number"),
    ("double", {"a": 1}, "is not a number"),
    ("boolean", "maybe", "'maybe' is not true or false"),
    ("boolean", 2, "is not true or false"),
    ("date", "31/12/2024", "'31/12/2024' is not a date"),
    ("date", 5, "is not a date"),
    ("string", {"a": 1}, "is not text"),
    ("object", "x", "is not an object"),
    ("geo_location", "x", "cannot write geo_location fields"),
]


@pytest.mark.parametrize(("kind", "value", "expected"), GOOD)
def test_good_values(kind, value, expected):
    assert coerce(value, kind, "f") == expected


@pytest.mark.parametrize(("kind", "value", "message"), BAD)
def test_bad_values_name_the_field_and_the_problem(kind, value, message):
    with pytest.raises(CoercionError, match=message):
        coerce(value, kind, "f")


@pytest.mark.parametrize("value", [None, "", "   ", [], {}])
def test_empty_values(value):
    assert is_empty(value)


@pytest.mark.parametrize("value", [0, False, "0", "x"])
def test_falsy_values_are_not_empty(value):
    assert not is_empty(value)


def test_dotted_paths_build_nested_objects():
    data: dict = {}
    set_path(data, "address.city", "Oslo")
    set_path(data, "address.zip", "0150")
    set_path(data, "name", "Ada")
    assert data == {"address": {"city": "Oslo", "zip": "0150"}, "name": "Ada"}


def test_leaf_paths_undo_set_path():
    data: dict = {}
    for path, value in {"address.city": "Oslo", "address.geo.lat": 59.9, "name": "Ada"}.items():
        set_path(data, path, value)
    assert leaf_paths(data) == {"address.city": "Oslo", "address.geo.lat": 59.9, "name": "Ada"}
