"""Customer.io's data model: its identifiers, its attributes, their limits, and the v2 operations a
record and an event become.

Facts from ../shared/reference/customerio.md (sections 2.3, 2.4, 3.1, 3.2, 4.3) and the Track
OpenAPI document: a person is identified by exactly one of id or email per operation, everything
else is a flat attribute; dates are Unix seconds; an event's dedupe id is a ULID.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from field_mapping import coercion
from integrations.destinations.base import CatalogueField, CoercionError, MappedRecord
from lib import jsoncodec
from lib.emails import is_email

IDENTIFIERS = ("id", "email")
IDENTIFY_BY = {"id": "ID", "email": "email"}
# reference 2.4 ("Customer limits"): bytes, not characters (the reserved-attributes page says
# characters for id; multi-byte ids make them differ, and bytes is the stricter reading).
MAX_ID_BYTES = 150
MAX_ATTRIBUTE_NAME_BYTES = 150
MAX_ATTRIBUTE_VALUE_BYTES = 1000
MAX_ATTRIBUTES = 300
MAX_EVENT_NAME_BYTES = 100  # reference 2.4, "Track API Event limits"
MAX_EVENT_DATA_BYTES = 100_000
# reference 3.2: "32kb or smaller" per item and "smaller than 500kb" per batch, read as 32,000 and
# 500,000 bytes, the strictest readings implementations use. No item count is documented: 100 is the
# most Segment's destination sends (6.4), and it bounds what one refusal of a whole request costs.
MAX_ITEM_BYTES = 32_000
MAX_BATCH_BYTES = 500_000
MAX_BATCH_OPERATIONS = 100

# Attributes Customer.io reserves that a form may set (reference 2.3 and the reserved-attributes page),
# and first_name / last_name, which every example of the Track API uses (its OpenAPI examples, Segment,
# Grouparoo): with no endpoint listing a workspace's attributes (reference 5) they are what a mapping
# suggests. Types are Flowsync's names for what the values become (see _coercers).
RESERVED = {
    "id": "string",
    "email": "string",
    "created_at": "date",
    "first_name": "string",
    "last_name": "string",
    "phone": "string",
    "unsubscribed": "boolean",
}
# What a form has no business writing (reference 2.3): cio_id is Customer.io's own and immutable;
# anonymous_id links anonymous activity and may never be reused, which a form value cannot promise;
# _update and _timestamp steer the update and are not attributes; cio_relationships and
# cio_subscription_preferences are objects with a grammar of their own (relationships, consent
# topics) that a single form field cannot fill. Customer.io's own keys start with cio_ or _, so new
# names may not either.
INTERNAL = frozenset(
    {"cio_id", "anonymous_id", "_update", "_timestamp", "cio_relationships", "cio_subscription_preferences"}
)
INTERNAL_PREFIXES = ("cio_", "_")
NEW_FIELD_TYPES = {
    "text": "string",
    "email": "string",
    "phone": "string",
    "choice": "string",
    "number": "number",
    "date": "date",
    "boolean": "boolean",
    "consent": "boolean",  # the answer (true / false); the wording and time stay in Flowsync
}
SUGGESTED_TARGETS = {"email": "email", "first_name": "first_name", "last_name": "last_name", "phone": "phone"}
OVER_LIMIT = "over_limit"


def byte_len(value: Any) -> int:
    """A value's size as Customer.io's limits count it: a string's UTF-8 bytes, anything else its JSON."""
    if isinstance(value, str):
        return len(value.encode())
    return len(encode(value))


@functools.lru_cache(maxsize=4096)
def _name_too_long(name: str) -> bool:
    # Cached: a sync sends the same few attribute names with every person.
    return byte_len(name) > MAX_ATTRIBUTE_NAME_BYTES


def encode(value: Any) -> bytes:
    """Compact UTF-8 JSON: what a push sends, so what it measures is what Customer.io receives."""
    return jsoncodec.dumps(value)


def batch_body(encoded: list[bytes]) -> bytes:
    """``encode({"batch": operations})`` from operations encoded one by one."""
    return b'{"batch":[' + b",".join(encoded) + b"]}"


BATCH_OVERHEAD = len(batch_body([]))


# --- The catalogue and new names ------------------------------------------------------------------


def _internal(name: str) -> bool:
    return name in INTERNAL or name.startswith(INTERNAL_PREFIXES)


def catalogue(schema_fields: dict[str, str]) -> list[CatalogueField]:
    """The reserved attributes and every name of ``schema_fields`` (attributes created before), bar
    internal ones; identifiers first."""
    names = {**RESERVED, **{k: v for k, v in schema_fields.items() if k not in RESERVED}}
    fields = [CatalogueField(name, kind, name in IDENTIFIERS) for name, kind in names.items() if not _internal(name)]
    return sorted(fields, key=lambda f: (not f.identifier, f.name not in RESERVED, f.name.lower()))


def new_field_problem(name: str, *, schema_fields: dict[str, str]) -> str:
    """Why ``name`` cannot be a new attribute, or "" (reference 2.4: any name up to 150 bytes)."""
    if not name or not name.strip():
        return "Give the new Customer.io attribute a name."
    if name != name.strip():
        return f"'{name}' starts or ends with a space: Customer.io keeps it, so it would be an attribute nobody finds."
    if byte_len(name) > MAX_ATTRIBUTE_NAME_BYTES:
        return f"'{name[:40]}…' is longer than Customer.io's {MAX_ATTRIBUTE_NAME_BYTES} bytes for an attribute name."
    if name in IDENTIFIERS:
        return f"'{name}' identifies people in Customer.io: pick it from the list."
    if _internal(name):
        return f"'{name}' is one of Customer.io's own keys (they start with cio_ or _): choose another name."
    if name in RESERVED or name in schema_fields:
        return f"Customer.io already has an attribute '{name}': pick it from the list instead."
    return ""


# --- Values ---------------------------------------------------------------------------------------


def to_unix_seconds(value: Any, field: str) -> int:
    """reference 2.3 (created_at) and 6.1 (the official client): dates are integer Unix seconds, UTC."""
    return int(coercion.to_datetime(value, field).timestamp())


def to_number(value: Any, field: str) -> int | float:
    """A whole number stays an integer (the only number type v1 takes, reference 2.3); else a float."""
    try:
        return coercion.to_long(value, field)
    except CoercionError:
        return coercion.to_double(value, field)


@functools.cache
def _coercers() -> dict[str, Any]:
    # Built on first use, not at import: field_mapping.coercion imports the destinations' base module, whose
    # package imports this one, so at import time coercion may be only half-initialised.
    return {
        "string": coercion.to_string,
        "number": to_number,
        "date": to_unix_seconds,
        "boolean": coercion.to_boolean,
    }


def coerce(value: Any, destination_type: str, field: str) -> Any:
    return coercion.coerce_with(_coercers(), value, destination_type, field, destination="Customer.io")


def identifier_value(name: str, value: Any) -> str:
    """The identifier as Customer.io takes it; raises CoercionError when it would refuse it."""
    text = coercion.to_string(value, name).strip()
    if not text:
        raise CoercionError(f"field {name}: Customer.io refuses an empty {name}")
    if name == "email":
        text = text.lower()  # reference 2.1: email is case-insensitive where it identifies people
        if not is_email(text):
            raise CoercionError(f"field email: {text!r} is not an email address")
        return text
    if byte_len(text) > MAX_ID_BYTES:
        raise CoercionError(f"field id: {text[:20]!r}… is longer than Customer.io's {MAX_ID_BYTES} bytes")
    return text


# --- Operations -----------------------------------------------------------------------------------


def payload(record: MappedRecord) -> dict[str, Any]:
    """A v2 person identify (reference 3.1). "You cannot pass multiple identifiers": the key goes in
    ``identifiers``, the other identifier is an attribute of the same name."""
    key_name, key = next(iter(record.identifiers.items()))
    attributes = {name: value for name, value in record.identifiers.items() if name != key_name}
    attributes.update(record.attributes)
    return {"type": "person", "action": "identify", "identifiers": {key_name: key}, "attributes": attributes}


def sent_values(operation: dict[str, Any], key: str) -> dict[str, Any]:
    """The values an identify sets, by name: its attributes, the other identifier among them."""
    attributes = operation.get("attributes")
    return dict(attributes) if isinstance(attributes, dict) else {}


def identifier_of(operation: dict[str, Any]) -> str:
    identifiers = operation.get("identifiers")
    if not isinstance(identifiers, dict) or not identifiers:
        return ""
    return str(next(iter(identifiers.values())) or "")


def operation_problem(operation: dict[str, Any], size: int) -> tuple[str, str] | None:
    """(field, why) when Customer.io would refuse this identify for a limit (reference 2.4, 3.2),
    checked before sending so that the person fails alone, with a reason, and nothing is sent."""
    identifiers = operation.get("identifiers") or {}
    for name, value in identifiers.items():
        if name == "id" and byte_len(value) > MAX_ID_BYTES:
            return f"identifiers.{name}", f"The id is longer than Customer.io's {MAX_ID_BYTES} bytes."
    attributes = operation.get("attributes") or {}
    if len(attributes) > MAX_ATTRIBUTES:
        return "attributes", (
            f"This person has {len(attributes)} attributes; Customer.io takes at most {MAX_ATTRIBUTES} in one update."
        )
    for name in attributes:
        if _name_too_long(name):
            return f"attributes.{name[:40]}", (
                f"The attribute name '{name[:40]}…' is longer than Customer.io's {MAX_ATTRIBUTE_NAME_BYTES} bytes."
            )
    # No value is longer than the encoded operation that carries it (compact UTF-8 JSON adds quotes and
    # escapes, never takes bytes away): below the value limit, no value needs measuring (the hot path).
    for name, value in attributes.items() if size > MAX_ATTRIBUTE_VALUE_BYTES else ():
        if value is not None and (length := byte_len(value)) > MAX_ATTRIBUTE_VALUE_BYTES:
            return f"attributes.{name}", (
                f"The value of '{name}' is {length:,} bytes; Customer.io takes at most "
                f"{MAX_ATTRIBUTE_VALUE_BYTES:,} bytes per attribute value."
            )
    if size > MAX_ITEM_BYTES:
        return "", f"This person's data is {size:,} bytes; Customer.io takes at most {MAX_ITEM_BYTES:,} per person."
    return None


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def dedupe_id(event_id: str) -> str:
    """A ULID-shaped id (26 Crockford base32 characters, 128 bits) derived from Flowsync's stable
    ``event_id``: the Track OpenAPI asks a ULID for an event's ``id`` (components.schemas.dedupe_id),
    and a resend must carry the same one for Customer.io to ignore it. The hash fills the ULID's time
    part too: nothing is documented that reads it."""
    number = int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:16], "big")
    return "".join(_CROCKFORD[(number >> shift) & 31] for shift in range(125, -1, -5))


def event_operation(name: str, operation: dict[str, Any], data: dict[str, Any], *, event_id: str) -> dict[str, Any]:
    """A v2 person event (Track OpenAPI components.schemas.person_event) for the person of ``operation``."""
    event: dict[str, Any] = {
        "type": "person",
        "action": "event",
        "identifiers": dict(operation.get("identifiers") or {}),
        "name": name,
    }
    if event_id:
        event["id"] = dedupe_id(event_id)
    event["attributes"] = data
    return event


PLATFORMS = {"APNS": "ios", "APNS_SANDBOX": "ios", "GCM": "android"}


def device_operation(operation: dict[str, Any], device: dict[str, Any]) -> dict[str, Any]:
    """A v2 person add_device (Track OpenAPI components.schemas.person_add_device) for ``operation``'s person."""
    attributes = {"app_name": device["app_name"], **(device.get("attributes") or {})}
    return {
        "type": "person",
        "action": "add_device",
        "identifiers": dict(operation.get("identifiers") or {}),
        "device": {"token": device["token"], "platform": PLATFORMS[device["platform"]], "attributes": attributes},
    }


def event_problem(name: str, data: dict[str, Any]) -> str:
    """Why Customer.io would refuse the event (reference 2.4), or ""."""
    if not name or not name.strip():
        return "The event name is empty; Customer.io refuses a blank event name."
    if byte_len(name) > MAX_EVENT_NAME_BYTES:
        return f"The event name is longer than Customer.io's {MAX_EVENT_NAME_BYTES} bytes."
    if byte_len(data) > MAX_EVENT_DATA_BYTES:
        return f"The event data is longer than Customer.io's {MAX_EVENT_DATA_BYTES:,} bytes."
    return ""


def topic_attribute(target: str) -> str:
    """The dot-notation attribute of a stored subscription target "topic:<id>"; ValueError for another."""
    kind, _, number = str(target).partition(":")
    if kind != "topic" or not number.isdigit():
        raise ValueError(f"not a Customer.io subscription topic: {target!r}")
    return f"cio_subscription_preferences.topics.topic_{int(number)}"
