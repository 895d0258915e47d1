"""The coercion table: each form field type against good, bad and empty input."""

from __future__ import annotations

import pytest

from flows.models import FieldType
from flows.validation import FieldSpec, Invalid, clean_submission, coerce

SIZE = FieldSpec("size", "Size", FieldType.CHOICE, choices=("S", "M"))

GOOD = [
    (FieldType.TEXT, "  hello ", "hello"),
    (FieldType.EMAIL, "Ada@Example.com", "Ada@Example.com"),
    (FieldType.EMAIL, "ada@mail.example.co.uk", "ada@mail.example.co.uk"),
    (FieldType.PHONE, "+44 (20) 7946-0958", "+44 (20) 7946-0958"),
    (FieldType.NUMBER, 42, 42),
    (FieldType.NUMBER, "42", 42),
    (FieldType.NUMBER, "1,234.5", 1234.5),
    (FieldType.NUMBER, 3.0, 3),
    (FieldType.DATE, "2024-02-29", "2024-02-29"),
    (FieldType.BOOLEAN, True, True),
    (FieldType.BOOLEAN, False, False),
]
BAD = [
    (FieldType.TEXT, 5, "must be text"),
    (FieldType.TEXT, "x" * 2001, "at most 2000"),
    (FieldType.TEXT, "a\x00b", "NUL"),
    (FieldType.DATE, "2024-01-01\x00", "NUL"),
    (FieldType.TEXT, "a\ud800", "lone surrogate"),
    (FieldType.EMAIL, "ada\udfff@example.com", "lone surrogate"),
    (FieldType.EMAIL, "ada@", "not a valid email"),
    (FieldType.EMAIL, "ada @example.com", "not a valid email"),
    # Django's own validator takes these; Iterable does not (every sync would fail them).
    (FieldType.EMAIL, "ada@localhost", "needs a full domain after the @"),
    (FieldType.EMAIL, "ada@localhost.", "needs a full domain after the @"),
    (FieldType.EMAIL, "ada@intranet", "needs a full domain after the @"),
    (FieldType.EMAIL, "ada@[127.0.0.1]", "needs a full domain after the @"),
    (FieldType.EMAIL, "ada@[IPv6:::1]", "needs a full domain after the @"),
    (FieldType.PHONE, "12", "not a phone number"),
    (FieldType.PHONE, "call me", "not a phone number"),
    (FieldType.NUMBER, "ten", "'ten' is not a number"),
    (FieldType.NUMBER, True, "not true/false"),
    (FieldType.NUMBER, [1], "must be a number"),
    (FieldType.NUMBER, float("inf"), "finite"),
    (FieldType.NUMBER, 2**70, "too large"),
    (FieldType.DATE, "2023-02-29", "not a date"),
    (FieldType.DATE, "29/02/2024", "not a date"),
    (FieldType.BOOLEAN, "yes", "true or false"),
    (FieldType.BOOLEAN, 1, "true or false"),
]


@pytest.mark.parametrize(("field_type", "raw", "expected"), GOOD)
def test_good_values(field_type, raw, expected):
    assert coerce(FieldSpec("f", "F", field_type), raw) == expected


@pytest.mark.parametrize(("field_type", "raw", "message"), BAD)
def test_bad_values(field_type, raw, message, settings):
    with pytest.raises(Invalid, match=message):
        coerce(FieldSpec("f", "F", field_type), raw)


def test_choice():
    assert coerce(SIZE, "M") == "M"
    with pytest.raises(Invalid, match="not one of: S, M"):
        coerce(SIZE, "XL")


def test_form_booleans_are_checkboxes():
    spec = FieldSpec("vip", "VIP", FieldType.BOOLEAN)
    assert coerce(spec, "on", from_form=True) is True
    assert clean_submission([spec], {}, from_form=True) == ({"vip": False}, {})


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_empty_optional_values_are_not_stored(empty):
    spec = FieldSpec("age", "Age", FieldType.NUMBER)
    assert clean_submission([spec], {"age": empty}) == ({}, {})


def test_required_and_unknown_fields_are_named():
    specs = [FieldSpec("email", "Email", FieldType.EMAIL, required=True)]
    data, errors = clean_submission(specs, {"shoe": "9"})
    assert data == {}
    assert errors == {"shoe": "unknown field 'shoe'; this flow accepts: email", "email": "Email is required"}


def test_required_consent_must_be_ticked():
    spec = FieldSpec("consent", "Consent", FieldType.BOOLEAN, required=True)
    assert clean_submission([spec], {}, from_form=True)[1] == {"consent": "Consent must be ticked"}
