"""Turn a raw submission into typed contact data, or say which field is wrong.

One path for both entry points: the public form (values are strings from
``request.POST``) and the capture API (values are JSON). Pure functions: no
database, so they are cheap to test exhaustively.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from flows.models import FieldType
from lib.numbers import NotANumber, parse_number

MAX_FIELDS_PER_SUBMISSION = 100
_PHONE_ALLOWED = re.compile(r"^\+?[0-9 ().\-/]+$")
_FORM_TRUE = {"on", "true", "1", "yes"}
_FORM_FALSE = {"", "off", "false", "0", "no"}
_CHECKBOXES = (FieldType.BOOLEAN, FieldType.CONSENT)


@dataclass(frozen=True)
class FieldSpec:
    """What validation needs to know about a flow field."""

    key: str
    label: str
    field_type: str
    required: bool = False
    choices: tuple[str, ...] = ()
    wording: str = ""  # a consent box's text


class Invalid(Exception):
    """A value that does not fit its field; the message is for the submitter."""


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _text(value: Any) -> str:
    """Every string value that is stored passes here (text, email, phone, date, choice)."""
    if not isinstance(value, str):
        raise Invalid("must be text")
    # PostgreSQL's text and jsonb store neither NUL nor a lone UTF-16 surrogate (JSON's
    # "\ud800" decodes to one and json.dumps writes it back out as an escape): refused
    # here, the submitter gets a 4xx naming the field instead of a 500 at INSERT.
    if "\x00" in value:
        raise Invalid("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("must be valid Unicode text (it contains a lone surrogate such as \\ud800)") from None
    value = value.strip()
    if len(value) > settings.CAPTURE_MAX_VALUE_LENGTH:
        raise Invalid(f"must be at most {settings.CAPTURE_MAX_VALUE_LENGTH} characters")
    return value


def _email(value: Any) -> str:
    value = _text(value)
    if len(value) > 254:
        raise Invalid("must be at most 254 characters")
    local, at, domain = value.rpartition("@")
    # Django's validate_email lets "user@localhost" through (its allowlist) and takes "user@[10.0.0.1]";
    # neither is an address a marketing platform accepts, so every sync of it would fail.
    if at and local and domain and (domain.startswith("[") or "." not in domain.strip(".")):
        raise Invalid(f"'{value}' is not a valid email address: it needs a full domain after the @, like example.com")
    try:
        validate_email(value)
    except ValidationError:
        raise Invalid(f"'{value}' is not a valid email address") from None
    return value


def _phone(value: Any) -> str:
    value = _text(value)
    digits = sum(ch.isdigit() for ch in value)
    if not _PHONE_ALLOWED.match(value) or not 5 <= digits <= 20:
        raise Invalid(f"'{value}' is not a phone number")
    return value


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise Invalid("must be a number, not true/false")
    if isinstance(value, str):
        try:
            value = parse_number(value)
        except NotANumber as exc:
            raise Invalid(str(exc)) from None
    if isinstance(value, int):
        if abs(value) > 2**63 - 1:
            raise Invalid("is too large")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid("must be a finite number")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    raise Invalid("must be a number")


def _date(value: Any) -> str:
    value = _text(value)
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise Invalid(f"'{value}' is not a date (use YYYY-MM-DD)") from None


def _boolean(value: Any, *, from_form: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_form and isinstance(value, str) and value.strip().lower() in _FORM_TRUE | _FORM_FALSE:
        return value.strip().lower() in _FORM_TRUE
    raise Invalid("must be true or false")


def coerce(spec: FieldSpec, value: Any, *, from_form: bool = False) -> Any:
    """The typed value for ``spec``, or raise :class:`Invalid`."""
    kind = spec.field_type
    if kind == FieldType.EMAIL:
        return _email(value)
    if kind == FieldType.PHONE:
        return _phone(value)
    if kind == FieldType.NUMBER:
        # A numeric string is accepted from JSON too: spreadsheet exports and
        # no-code tools often send numbers as text.
        return _number(value)
    if kind == FieldType.DATE:
        return _date(value)
    if kind in _CHECKBOXES:
        return _boolean(value, from_form=from_form)
    if kind == FieldType.CHOICE:
        text = _text(value)
        if text not in spec.choices:
            raise Invalid(f"'{text}' is not one of: {', '.join(spec.choices)}")
        return text
    return _text(value)


def clean_submission(
    specs: Iterable[FieldSpec], raw: Mapping[str, Any], *, from_form: bool = False
) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate ``raw`` against the flow's fields.

    Returns ``(data, errors)``: ``data`` holds the typed values of the fields that
    were given; ``errors`` maps a field key to a message naming the problem. The
    caller stores nothing when ``errors`` is not empty.
    """
    specs = list(specs)
    by_key = {spec.key: spec for spec in specs}
    errors: dict[str, str] = {}
    data: dict[str, Any] = {}

    if len(raw) > MAX_FIELDS_PER_SUBMISSION:
        return {}, {"fields": f"too many fields ({len(raw)}); at most {MAX_FIELDS_PER_SUBMISSION}"}
    for key in raw:
        if key not in by_key:
            accepted = ", ".join(by_key) or "no fields"
            errors[str(key)[:60]] = f"unknown field '{str(key)[:60]}'; this flow accepts: {accepted}"

    for spec in specs:
        value = raw.get(spec.key)
        if spec.field_type in _CHECKBOXES and from_form and value is None:
            value = False  # an unticked checkbox is simply absent from the POST
        if _is_empty(value):
            if spec.required:
                errors[spec.key] = f"{spec.label} is required"
            continue
        try:
            typed = coerce(spec, value, from_form=from_form)
        except Invalid as exc:
            errors[spec.key] = f"{spec.label} {exc}" if str(exc).startswith(("must", "is ")) else f"{spec.label}: {exc}"
            continue
        if spec.required and spec.field_type in _CHECKBOXES and typed is not True:
            errors[spec.key] = f"{spec.label} must be ticked"
            continue
        data[spec.key] = typed
    return data, errors
