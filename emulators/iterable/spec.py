"""Check request bodies against Iterable's own Swagger 2.0 document.

A small validator for the subset of JSON Schema that document uses (``$ref``,
``type``, ``required``, ``properties``, ``items``, ``enum``). Objects that declare
``properties`` are closed: an unknown key is an error, which is what catches a
client that drifts from the real API (a typo such as ``dataField``).

:data:`HANDLER_SHAPES` is a much smaller document of the same kind: the shapes the
emulator's handlers rely on, checked whether Iterable's document is there or not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve()
# The repo keeps Iterable's document in ../shared/specs (beside the checkout). ITERABLE_EMULATOR_SPEC
# points elsewhere (a path that does not exist runs without it, as a checkout without ../shared does).
DEFAULT_SPEC = _HERE.parents[3] / "shared" / "specs" / "iterable-api-docs.json"

_TYPE_WORDS = {
    "boolean": "Boolean value expected",
    "integer": "Integer value expected",
    "number": "Number value expected",
    "string": "String value expected",
    "array": "Array value expected",
    "object": "Object value expected",
}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


class SwaggerSpec:
    def __init__(self, document: dict) -> None:
        self.document = document
        self.definitions = document.get("definitions", {})
        self._bodies: dict[tuple[str, str], dict] = {}
        for path, item in document.get("paths", {}).items():
            for method, operation in item.items():
                for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                    if parameter.get("in") == "body" and "schema" in parameter:
                        self._bodies[(method.upper(), path)] = parameter["schema"]

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> SwaggerSpec | None:
        """The spec at ``path`` (or the default location), or None when it is absent."""
        candidate = Path(path or os.environ.get("ITERABLE_EMULATOR_SPEC") or DEFAULT_SPEC)
        if not candidate.is_file():
            return None
        return cls(json.loads(candidate.read_text()))

    def body_schema(self, method: str, path: str) -> dict | None:
        return self._bodies.get((method.upper(), path))

    def validate(self, method: str, path: str, body: Any) -> dict[str, str]:
        """Problems keyed by JSON path (``obj.users[1].preferUserId``); empty when the body fits."""
        schema = self.body_schema(method, path)
        if schema is None:
            return {}
        errors: dict[str, str] = {}
        self._check(schema, body, "obj", errors)
        return errors

    def _resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            schema = self.definitions[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def _check(self, schema: dict, value: Any, where: str, errors: dict[str, str]) -> None:
        schema = self._resolve(schema)
        if value is None and schema.get("x-nullable"):
            return
        kind = schema.get("type")
        if kind and not _is_type(value, kind):
            errors[where] = _TYPE_WORDS.get(kind, f"{kind} expected")
            return
        if "enum" in schema and value not in schema["enum"]:
            errors[where] = f"One of {schema['enum']} expected"
            return
        if isinstance(value, dict) and "properties" in schema:
            properties = schema["properties"]
            for name in schema.get("required", []):
                if name not in value:
                    errors[f"{where}.{name}"] = "Missing required field"
            for name, item in value.items():
                if name not in properties:
                    if schema.get("additionalProperties") is not True:
                        errors[f"{where}.{name}"] = "Unknown field"
                else:
                    self._check(properties[name], item, f"{where}.{name}", errors)
        if isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                self._check(schema["items"], item, f"{where}[{index}]", errors)


def _open_object(properties: dict[str, dict], required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": True}


def _body(schema: dict, method: str = "post") -> dict:
    return {method: {"parameters": [{"in": "body", "name": "body", "schema": schema}]}}


_NULLABLE_STRING = {"type": "string", "x-nullable": True}
_USER = _open_object(
    {"email": _NULLABLE_STRING, "userId": _NULLABLE_STRING, "dataFields": {"type": "object", "x-nullable": True}}
)
_USERS = {"type": "array", "items": _USER}
_IDS = {"type": "array", "items": {"type": "integer"}, "x-nullable": True}
_STRINGS = {"type": "array", "items": {"type": "string"}}
# Swagger UpdateSubscriptionsRequest: the id arrays the handler overwrites the profile's with.
_UPDATE_SUBSCRIPTIONS = _open_object(
    {
        **_USER["properties"],
        "emailListIds": _IDS,
        "unsubscribedChannelIds": _IDS,
        "unsubscribedMessageTypeIds": _IDS,
        "subscribedMessageTypeIds": _IDS,
    }
)

# The keys and types the handlers (server.py) index into. Open objects: Iterable's document, when
# present, is what catches unknown keys; this only keeps a malformed body from crashing a handler.
HANDLER_SHAPES = SwaggerSpec(
    {
        "paths": {
            "/api/users/update": _body(_USER),
            "/api/users/bulkUpdate": _body(_open_object({"users": _USERS}, ("users",))),
            "/api/lists": _body(_open_object({"name": {"type": "string"}}, ("name",))),
            "/api/lists/subscribe": _body(
                _open_object({"listId": {"type": "integer"}, "subscribers": _USERS}, ("listId", "subscribers"))
            ),
            "/api/lists/unsubscribe": _body(
                _open_object(
                    {"listId": {"type": "integer"}, "subscribers": _USERS, "channelUnsubscribe": {"type": "boolean"}},
                    ("listId", "subscribers"),
                )
            ),
            "/api/users/updateSubscriptions": _body(_UPDATE_SUBSCRIPTIONS),
            "/api/users/bulkUpdateSubscriptions": _body(
                _open_object(
                    {"updateSubscriptionsRequests": {"type": "array", "items": _UPDATE_SUBSCRIPTIONS}},
                    ("updateSubscriptionsRequests",),
                )
            ),
            "/api/subscriptions/{subscriptionGroup}/{subscriptionGroupId}": _body(
                _open_object({"users": _STRINGS, "usersByUserId": _STRINGS}), "put"
            ),
            "/api/events/track": _body(
                _open_object(
                    {"eventName": {"type": "string"}, **_USER["properties"]},
                    ("eventName",),
                )
            ),
        }
    }
)
