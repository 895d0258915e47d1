"""Turn a contact's typed value into what a destination field of a given type accepts.

Pure functions, no database: a value that cannot be converted raises
:class:`CoercionError` with a message for the sync log ("age → age: 'ten' is not
a number"), and fails that one record, never the batch.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from integrations.destinations.base import CoercionError
from lib.numbers import NotANumber, parse_number

__all__ = ["CoercionError", "coerce_with", "is_empty", "leaf_paths", "set_path"]

TRUE_WORDS = {"true", "yes", "y", "1", "on"}
FALSE_WORDS = {"false", "no", "n", "0", "off"}
LONG_MAX = 2**63 - 1


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "") or value == [] or value == {}


def _number(value: Any, field: str) -> float | int:
    if isinstance(value, bool):
        raise CoercionError(f"{field}: {value!r} is true/false, not a number")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise CoercionError(f"{field}: {value!r} is not a finite number")
        return value
    if isinstance(value, str):
        try:
            number = parse_number(value)
        except NotANumber as exc:
            raise CoercionError(f"{field}: {exc}") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise CoercionError(f"{field}: {value!r} is not a finite number")
        return number
    raise CoercionError(f"{field}: {value!r} is not a number")


def to_long(value: Any, field: str) -> int:
    number = _number(value, field)
    if isinstance(number, float):
        if not number.is_integer():
            raise CoercionError(f"{field}: {value!r} is not a whole number (the field is a long)")
        number = int(number)
    if abs(number) > LONG_MAX:
        raise CoercionError(f"{field}: {value!r} is too large for a long")
    return number


def to_double(value: Any, field: str) -> float:
    return float(_number(value, field))


def to_boolean(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise CoercionError(f"{field}: {value!r} is not true or false")


def to_datetime(value: Any, field: str) -> dt.datetime:
    """An aware datetime in UTC (a bare date is its midnight UTC); each destination writes it its way."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise CoercionError(f"{field}: {value!r} is not a date") from None
    else:
        raise CoercionError(f"{field}: {value!r} is not a date")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def to_string(value: Any, field: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise CoercionError(f"{field}: {value!r} is not text")


def to_object(value: Any, field: str) -> dict:
    if isinstance(value, dict):
        return value
    raise CoercionError(f"{field}: {value!r} is not an object")


COERCERS = {
    "string": to_string,
    "long": to_long,
    "double": to_double,
    "boolean": to_boolean,
    "object": to_object,
}


def coerce_with(coercers: dict, value: Any, destination_type: str, field: str, *, destination: str) -> Any:
    """The value for a field of ``destination_type`` by a destination's ``coercers`` (type -> function);
    a list is coerced item by item. Raises CoercionError."""
    coercer = coercers.get(destination_type.lower())
    if coercer is None:
        raise CoercionError(f"{field}: Flowsync cannot write {destination_type} fields to {destination}")
    if isinstance(value, list):
        return [coercer(item, field) for item in value]
    return coercer(value, field)


def set_path(target: dict, dotted: str, value: Any) -> None:
    """``set_path(d, "address.city", "Oslo")`` builds ``{"address": {"city": "Oslo"}}`` in ``d``."""
    *parents, leaf = dotted.split(".")
    node = target
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def leaf_paths(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"address": {"city": "Oslo"}}`` -> ``{"address.city": "Oslo"}``: what ``set_path`` builds, flat again."""
    leaves: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            leaves.update(leaf_paths(value, f"{path}."))
        else:
            leaves[path] = value
    return leaves
