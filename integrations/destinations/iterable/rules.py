"""Iterable's data model: its identifiers, field names, value types and the shape of a user record.

Facts from ../shared/reference/iterable.md (sections 3 and 6.1): users are keyed by
email or userId as the project type says, other values go in ``dataFields``
(nested objects merged with ``mergeNestedObjects``), dates as
``YYYY-MM-DD HH:MM:SS +00:00``.
"""

from __future__ import annotations

import re
from typing import Any

from field_mapping import coercion
from integrations.destinations.base import CatalogueField, CoercionError, MappedRecord

IDENTIFIERS = ("email", "userId")
PROJECT_TYPES = {"email": "Email-based", "userId": "UserID-based", "hybrid": "Hybrid"}
# Which identifiers Iterable accepts, by project type (reference 6.1): an email-based project
# errors on an unknown userId sent alone, a userID-based one does not identify users by email.
ACCEPTED_IDENTIFIERS = {"email": ("email",), "userId": ("userId",), "hybrid": ("email", "userId")}
USER_ID_MAX_LENGTH = 52  # reference 6.1
# Profile fields Iterable manages itself, or that a form has no business writing (reference 3).
SYSTEM_FIELDS = {
    "signupDate",
    "profileUpdatedAt",
    "emailListIds",
    "userListIds",
    "unsubscribedChannelIds",
    "unsubscribedMessageTypeIds",
    "subscribedMessageTypeIds",
    "phoneNumberDetails",
}
SYSTEM_PREFIXES = ("itblInternal.", "devices.", "phoneNumberDetails.", "browserTokens")
# The type a new field gets from the form field's type (flows.models.FieldType values).
NEW_FIELD_TYPES = {
    "text": "string",
    "email": "string",
    "phone": "string",
    "choice": "string",
    "number": "double",
    "date": "date",
    "boolean": "boolean",
    "consent": "boolean",  # the answer (true / false); the wording and time stay in Flowsync
}
SUGGESTED_TARGETS = {"email": "email", "first_name": "firstName", "last_name": "lastName", "phone": "phoneNumber"}
NEW_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\- ]{0,99}(\.[A-Za-z][A-Za-z0-9_\- ]{0,99}){0,3}$")
DATA = "dataFields"


def accepted_identifiers(project_type: str) -> tuple[str, ...]:
    return ACCEPTED_IDENTIFIERS.get(project_type, ("email",))


def catalogue(schema_fields: dict[str, str]) -> list[CatalogueField]:
    """The fetched fields a form may write: no system field, no whole object; identifiers first."""
    names = [
        CatalogueField(name, kind, name in IDENTIFIERS)
        for name, kind in schema_fields.items()
        if name not in SYSTEM_FIELDS and not name.startswith(SYSTEM_PREFIXES) and kind.lower() != "object"
    ]
    return sorted(names, key=lambda f: (not f.identifier, f.name.lower()))


def new_field_problem(name: str, *, schema_fields: dict[str, str]) -> str:
    """Why Iterable would not take ``name`` as a new field, or "" (reference 3: names are case-
    and space-sensitive, a type is fixed by the first value, fields cannot be deleted)."""
    available = {f.name for f in catalogue(schema_fields)}
    if not NEW_FIELD_NAME.match(name or ""):
        return (
            f"'{name}' is not a valid Iterable field name: start with a letter; use letters, digits, spaces, "
            "_ or -; a dot makes a nested field (address.city)."
        )
    if any(part != part.strip() or "  " in part for part in name.split(".")):
        return f"'{name}' has stray spaces: Iterable keeps them, so it would be a field nobody can find."
    if name in IDENTIFIERS:
        return f"'{name}' is an identifier: pick it from the list."
    if name in available:
        return f"Iterable already has a field '{name}': pick it from the list instead."
    if name in schema_fields or name in SYSTEM_FIELDS or name.startswith(SYSTEM_PREFIXES):
        return f"'{name}' is a field Iterable manages itself (or an object): choose another name."
    if name.lower().endswith("_geo_location"):
        return "Fields ending in _geo_location hold coordinates: Flowsync cannot create them."
    parts = name.split(".")
    for depth in range(1, len(parts)):
        parent = ".".join(parts[:depth])
        kind = schema_fields.get(parent)
        if kind is not None and kind.lower() != "object":
            return f"Iterable's '{parent}' is a {kind.lower()} field, so it cannot hold '{name}'."
    same_but_case = next((known for known in schema_fields if known.lower() == name.lower()), None)
    if same_but_case:
        return (
            f"Iterable has '{same_but_case}'. Names are case-sensitive, so '{name}' would be a second field: "
            f"pick '{same_but_case}' from the list or choose another name."
        )
    return ""


def to_date(value: Any, field: str) -> str:
    """Iterable's own date format, ``YYYY-MM-DD HH:MM:SS +00:00`` (reference 3), in UTC."""
    return coercion.to_datetime(value, field).strftime("%Y-%m-%d %H:%M:%S +00:00")


COERCERS = {**coercion.COERCERS, "date": to_date}


def coerce(value: Any, destination_type: str, field: str) -> Any:
    return coercion.coerce_with(COERCERS, value, destination_type, field, destination="Iterable")


def identifier_value(name: str, value: Any) -> str:
    """The identifier as Iterable wants it; raises CoercionError when Iterable would refuse it."""
    text = coercion.to_string(value, name).strip()
    if name == "email":
        return text.lower()
    if len(text) > USER_ID_MAX_LENGTH:
        raise CoercionError(f"field userId: {text[:20]!r}… is longer than Iterable's {USER_ID_MAX_LENGTH} characters")
    if not (text.isascii() and text.isprintable()):
        raise CoercionError(f"field userId: {text!r} has characters Iterable refuses (use printable ASCII)")
    return text


def payload(record: MappedRecord) -> dict[str, Any]:
    """A bulkUpdate user: the identifiers at the top, every other value in dataFields."""
    data: dict[str, Any] = {}
    for path, value in record.attributes.items():
        # set_path, so an empty address.city erases the nested field, not a field named "address.city"
        coercion.set_path(data, path, value)
    body: dict[str, Any] = {**record.identifiers, DATA: data}
    if any(isinstance(v, dict) for v in data.values()):
        body["mergeNestedObjects"] = True  # nested fields add to an object, never replace it whole
    return body


def sent_values(body: dict[str, Any], key: str) -> dict[str, Any]:
    """The values a bulkUpdate user sets, by neutral path: its dataFields leaves and the identifier it
    is not keyed by (in a hybrid project the other one is a value)."""
    values = dict(coercion.leaf_paths(body.get(DATA) or {}))
    for name in IDENTIFIERS:
        if body.get(name) and body[name] != key:
            values[name] = body[name]
    return values


def identifier_of(body: dict[str, Any], project_type: str) -> str:
    if project_type == "userId":
        return str(body.get("userId") or "")
    return str(body.get("email") or body.get("userId") or "")


# --- Consent subscriptions (peers-consent-erasure 2.1) -----------------------------------------------
# A subscription target's id is "<group>:<id>", the group as the Subscriptions API's path names it.
SUBSCRIBE_LIST = "emailList"
SUBSCRIBE_MESSAGE_TYPE = "messageType"
SUBSCRIBE_CHANNEL = "messageChannel"
_SUBSCRIPTION_GROUPS = (SUBSCRIBE_LIST, SUBSCRIBE_MESSAGE_TYPE, SUBSCRIBE_CHANNEL)


def subscription_target(target: str) -> tuple[str, int]:
    """(group, numeric id) of a stored target; ValueError for one that is not."""
    group, _, number = str(target).partition(":")
    if group not in _SUBSCRIPTION_GROUPS or not number.isdigit():
        raise ValueError(f"not an Iterable subscription: {target!r}")
    return group, int(number)
