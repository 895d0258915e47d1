"""Check request bodies against Customer.io's own OpenAPI 3.1 document for the Track API.

A small validator for the part of JSON Schema that document uses on request bodies:
``$ref`` (local), ``allOf``, ``anyOf``, ``oneOf``, ``type`` (a name or a list of names),
``enum``, ``required``, ``properties``, ``additionalProperties`` and ``items``.

Objects stay open as JSON Schema says (an undeclared key is allowed unless the document says
``additionalProperties: false``): unlike the Iterable emulator's Swagger check, this is what the
document itself means, and Customer.io's schemas declare custom attributes as additional properties.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve()
# The repo keeps the document in ../shared/specs, beside the checkout. CUSTOMERIO_EMULATOR_SPEC points
# elsewhere; a path that does not exist runs without it, as a checkout without ../shared does.
DEFAULT_SPEC = _HERE.parents[3] / "shared" / "specs" / "customerio-track-api-openapi.json"

_TYPE_WORDS = {
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a body: the shape of an item of a v2 ``errors`` array."""

    field: str
    reason: str  # "required" | "invalid"
    message: str

    def as_error(self) -> dict[str, str]:
        return {"reason": self.reason, "field": self.field, "message": self.message}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
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


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


class OpenAPISpec:
    def __init__(self, document: dict) -> None:
        self.document = document
        self.schemas = document.get("components", {}).get("schemas", {})

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> OpenAPISpec | None:
        """The document at ``path`` (or CUSTOMERIO_EMULATOR_SPEC, or the default place), None when absent."""
        candidate = Path(path or os.environ.get("CUSTOMERIO_EMULATOR_SPEC") or DEFAULT_SPEC)
        if not candidate.is_file():
            return None
        return cls(json.loads(candidate.read_text()))

    def body_schema(self, method: str, path: str) -> dict | None:
        operation = self.document.get("paths", {}).get(path, {}).get(method.lower(), {})
        content = operation.get("requestBody", {}).get("content", {})
        return content.get("application/json", {}).get("schema")

    def batch_item_schema(self) -> dict | None:
        schema = self.body_schema("POST", "/api/v2/batch")
        return ((schema or {}).get("properties", {}).get("batch") or {}).get("items")

    def validate(self, schema: dict, value: Any, where: str = "") -> list[Problem]:
        problems: list[Problem] = []
        self._check(schema, value, where, problems)
        return problems

    # --- the checks ----------------------------------------------------------------------------

    def _resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def _check(self, schema: Any, value: Any, where: str, problems: list[Problem]) -> None:
        if not isinstance(schema, dict):  # additionalProperties: true, or a bare {} anywhere
            if schema is False:
                problems.append(Problem(where, "invalid", f"{where} is not allowed"))
            return
        schema = self._resolve(schema)
        for part in schema.get("allOf", []):
            self._check(part, value, where, problems)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                self._check_alternatives(keyword, schema, value, where, problems)
        kinds = schema.get("type")
        if kinds is not None:
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if not any(_is_type(value, kind) for kind in kinds):
                words = " or ".join(_TYPE_WORDS.get(kind, kind) for kind in kinds)
                problems.append(Problem(where, "invalid", f"{where or 'value'} must be {words}"))
                return
        if "enum" in schema and value not in schema["enum"]:
            problems.append(
                Problem(where, "invalid", f"{where or 'value'} must be one of {', '.join(map(str, schema['enum']))}")
            )
            return
        if isinstance(value, dict):
            properties = schema.get("properties", {})
            for name in schema.get("required", []):
                if name not in value:
                    problems.append(Problem(_join(where, name), "required", f"{_join(where, name)} is required"))
            extra = schema.get("additionalProperties", True)
            for name, item in value.items():
                if name in properties:
                    self._check(properties[name], item, _join(where, name), problems)
                elif "additionalProperties" in schema:
                    self._check(extra, item, _join(where, name), problems)
        if isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                self._check(schema["items"], item, f"{where}[{index}]", problems)

    def _check_alternatives(self, keyword: str, schema: dict, value: Any, where: str, problems: list[Problem]) -> None:
        branches = schema[keyword]
        # A branch whose fixed values (``type``, ``action``: the discriminators) disagree with the value
        # fails on them whatever else it holds: only the others are validated in full (a batch item has
        # a dozen alternatives, and validating each one for every item made the emulator the bottleneck).
        meant_branches = [branch for branch in branches if self._applies(branch, value)]
        meant = [self.validate(branch, value, where) for branch in meant_branches]
        passing = sum(1 for found in meant if not found)
        if passing == 1 or (passing > 1 and keyword == "anyOf"):
            return
        names = ", ".join(self._title(branch) for branch in branches)
        if passing > 1:
            problems.append(Problem(where, "invalid", f"{where or 'value'} must match exactly one of: {names}"))
            return
        # None fits. The branches whose discriminators agree with the value are the ones it meant to be:
        # when that is one branch, its own problems say the most.
        if len(meant) == 1:
            problems.extend(meant[0])
        else:
            problems.append(Problem(where, "invalid", f"{where or 'value'} must match one of: {names}"))

    def _applies(self, schema: dict, value: Any) -> bool:
        schema = self._resolve(schema)
        if not isinstance(value, dict):
            return True
        for part in schema.get("allOf", []):
            if not self._applies(part, value):
                return False
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema and not any(self._applies(branch, value) for branch in schema[keyword]):
                return False
        for name, prop in schema.get("properties", {}).items():
            prop = self._resolve(prop) if isinstance(prop, dict) else {}
            if name in value and "enum" in prop and value[name] not in prop["enum"]:
                return False
        return True

    def _title(self, schema: dict) -> str:
        if "$ref" in schema:
            resolved = self._resolve(schema)
            return resolved.get("title") or schema["$ref"].rsplit("/", 1)[-1]
        kinds = schema.get("type")
        if schema.get("title") or not kinds:
            return schema.get("title") or "schema"
        return " or ".join(kinds) if isinstance(kinds, list) else kinds
