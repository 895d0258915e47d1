"""Iterable's answers, read strictly: bulk counts and failure lists, dropped fields, refused values.

A 2xx counts only in its documented shape (reference 2.2, 6.3, 6.4; the Swagger's
``UserBulkUpdateListResponse`` and ``IterableApiResponse``). Anything else (a proxy's
page, an empty or cut-off body, counts that do not add up to the records sent) proves
nothing, and its records fail retryably as ``unexpected_answer``: sending again is
harmless (upserts), counting them delivered would lose them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from integrations.destinations.base import RecordResult, TypeMismatchError, UnexpectedAnswerError

UNEXPECTED_ANSWER = UnexpectedAnswerError.default_code
FIELDS_FILTERED_OUT = "fields_filtered_out"
TYPE_MISMATCH = "RequestFieldsTypesMismatched"
FAILED_UPDATE_MESSAGES = {
    "invalidEmails": ("invalid_identifier", "Iterable rejected the email address as malformed."),
    "invalidUserIds": ("invalid_identifier", "Iterable rejected the userId (empty, too long or not plain ASCII)."),
    "invalidDataEmails": ("invalid_data", "Iterable rejected a data field value of this user."),
    "invalidDataUserIds": ("invalid_data", "Iterable rejected a data field value of this user."),
    "conflictEmails": ("conflict", "Another Iterable user already has this email or userId."),
    "conflictUserIds": ("conflict", "Another Iterable user already has this email or userId."),
    "forgottenEmails": ("forgotten", "This user asked to be forgotten (GDPR) in Iterable; not updated."),
    "forgottenUserIds": ("forgotten", "This user asked to be forgotten (GDPR) in Iterable; not updated."),
    "notFoundEmails": ("not_found", "No such user in Iterable."),
    "notFoundUserIds": ("not_found", "No such user in Iterable."),
}
_DEPRECATED_LISTS = ("invalidEmails", "invalidUserIds")  # top-level copies of failedUpdates' lists
_OPTIONAL_LISTS = ("createdFields", "filteredOutFields", *_DEPRECATED_LISTS)
_EXCERPT = 160


# --- What went wrong, in words for the log row ----------------------------------------------------


def _excerpt(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"


def unexpected_message(what: str, status: int, body: Any, problem: str) -> str:
    return (
        f"Iterable's answer to {what} was not the documented one ({problem}; HTTP {status}: {_excerpt(body)}). "
        "Nothing proves it took effect."
    )


# --- Bulk answers: bulkUpdate and lists/subscribe ---------------------------------------------------


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def bulk_shape_problem(body: Any) -> str:
    """What keeps ``body`` from being a ``UserBulkUpdateListResponse``, or "" when it is one.

    The client hands a body that is not JSON over as ``{"msg": <its text>}``: it has no counts.
    """
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    missing = [name for name in ("successCount", "failCount") if not _is_count(body.get(name))]
    if missing:
        return f"no {' or '.join(missing)}"
    for name in _OPTIONAL_LISTS:
        if body.get(name) is not None and not isinstance(body[name], list):
            return f"{name} is not a list"
    failed = body.get("failedUpdates")
    if failed is not None and (
        not isinstance(failed, dict) or any(v is not None and not isinstance(v, list) for v in failed.values())
    ):
        return "failedUpdates is not an object of lists"
    return ""


def _failure_reasons(body: dict) -> dict[str, tuple[str, str, bool, str]]:
    """Identifier value -> (Flowsync's code, message, retryable, the list Iterable named it in), from
    failedUpdates and the deprecated top-level lists."""
    reasons: dict[str, tuple[str, str, bool, str]] = {}
    failed = body.get("failedUpdates") or {}
    for list_name, (code, message) in FAILED_UPDATE_MESSAGES.items():
        for value in failed.get(list_name) or []:
            reasons.setdefault(str(value), (code, message, False, list_name))
    for list_name in _DEPRECATED_LISTS:
        code, message = FAILED_UPDATE_MESSAGES[list_name]
        for value in body.get(list_name) or []:
            reasons.setdefault(str(value), (code, message, False, list_name))
    return reasons


def _reason_for(
    record: dict[str, Any], reasons: dict[str, tuple[str, str, bool, str]]
) -> tuple[str, str, bool, str] | None:
    email, user_id = record.get("email"), record.get("userId")
    for value in (user_id, email, email.lower() if isinstance(email, str) else None):
        if value is not None and str(value) in reasons:
            return reasons[str(value)]
    return None


def read_bulk_answer(
    *,
    what: str,
    status: int,
    body: Any,
    records: list[dict[str, Any]],
    identifier_of: Callable[[dict[str, Any]], str],
) -> list[RecordResult]:
    """One result per record, in order, from a 2xx bulk answer (reference 2.2: failures by identifier).

    The answer is believed only when it has the documented shape, its counts add up to the records
    sent, and it names no more failures than it counts; otherwise every record fails retryably. When
    it counts more failures than it names, the named ones fail with their reason and the others
    cannot be told from the delivered ones: they fail retryably. ``filteredOutFields`` that a
    delivered record carried make it delivered with a warning (FIELDS_FILTERED_OUT).
    """
    problem = bulk_shape_problem(body)
    if not problem and body["successCount"] + body["failCount"] != len(records):
        problem = f"it counted {body['successCount']} updated and {body['failCount']} failed of {len(records)} sent"
    named: dict[int, tuple[str, str, bool, str]] = {}
    if not problem:
        reasons = _failure_reasons(body)
        named = {i: hit for i, record in enumerate(records) if (hit := _reason_for(record, reasons))}
        if len(named) > body["failCount"]:
            problem = f"it named {len(named)} of the users sent as failed but counted {body['failCount']} failures"
    if problem:
        message = unexpected_message(what, status, body, problem)
        return [RecordResult(identifier_of(r), False, UNEXPECTED_ANSWER, message, retryable=True) for r in records]
    unnamed = body["failCount"] - len(named)
    unnamed_message = unexpected_message(
        what,
        status,
        body,
        f"it counted {body['failCount']} failures but named {len(named)}: the others cannot be told from the "
        "delivered users",
    )
    dropped = [str(name) for name in body.get("filteredOutFields") or []]
    results = []
    for index, record in enumerate(records):
        identifier = identifier_of(record)
        if index in named:
            results.append(RecordResult(identifier, False, *named[index]))
        elif unnamed:
            results.append(RecordResult(identifier, False, UNEXPECTED_ANSWER, unnamed_message, retryable=True))
        elif fields := dropped_fields(record, dropped):
            results.append(RecordResult(identifier, True, FIELDS_FILTERED_OUT, filtered_message(fields)))
        else:
            results.append(RecordResult(identifier, True))
    return results


def _paths(data: Any, prefix: str = "") -> set[str]:
    """Every dotted path of ``data`` (parents included), as Iterable names fields (reference 3)."""
    if not isinstance(data, dict):
        return set()
    paths: set[str] = set()
    for key, value in data.items():
        path = f"{prefix}{key}"
        paths.add(path)
        paths |= _paths(value, f"{path}.")
    return paths


def dropped_fields(record: dict[str, Any], dropped: list[str]) -> list[str]:
    """The fields of ``dropped`` (a request's filteredOutFields) this record carried."""
    if not dropped:
        return []
    paths = _paths(record.get("dataFields"))
    return [name for name in dropped if name in paths]


def filtered_message(fields: Iterable[str]) -> str:
    """sync_logs/explain.py reads the field names back from this sentence."""
    names = ", ".join(f"`{name}`" for name in fields)
    return (
        f"Delivered without the field(s) {names}: Iterable dropped them (the project does not have them and "
        "does not add unknown fields, and the mapping did not ask to create them)."
    )


# --- The other answers -----------------------------------------------------------------------------


def check_envelope(*, what: str, status: int, body: Any) -> None:
    """A 2xx ``IterableApiResponse`` (events/track): ``code`` "Success" and a ``msg`` (both required)."""
    if isinstance(body, dict) and body.get("code") == "Success" and isinstance(body.get("msg"), str):
        return
    raise UnexpectedAnswerError(unexpected_message(what, status, body, "no code Success"), status=status)


def check_subscription_answer(*, status: int, body: Any) -> None:
    """The Subscriptions API's success: a 200 ``IterableApiResponse`` or a 202 with any body (the Swagger
    documents none for it: "Accepted")."""
    if status == 202:
        return
    check_envelope(what="the subscription", status=status, body=body)


def items_of(name: str, response: Any) -> list[dict[str, Any]]:
    """The ``{name: [{"id": int, "name": str, ...}]}`` of GET /api/messageTypes and /api/channels."""
    body = response.body
    items = body.get(name) if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and _is_count(i.get("id")) and isinstance(i.get("name"), str) for i in items
    ):
        raise UnexpectedAnswerError(
            unexpected_message(f"GET /api/{name}", response.status, body, f"no list of {name} with ids and names"),
            status=response.status,
        )
    return items


def lookup_found(*, what: str, status: int, body: Any) -> bool:
    """A user lookup's answer (reference 4): ``{"user": {...}}`` found, ``{}`` not found; else not understood."""
    if isinstance(body, dict) and isinstance(body.get("user"), dict):
        return True
    if body == {} or (isinstance(body, dict) and set(body) == {"user"} and body["user"] is None):
        return False
    raise UnexpectedAnswerError(unexpected_message(what, status, body, "neither a user nor {}"), status=status)


# --- Refused values (RequestFieldsTypesMismatched) ----------------------------------------------------


@dataclass(frozen=True)
class RefusedValue:
    """A value Iterable refused for a field: the field, the value as Iterable named it, and why."""

    field: str
    value: Any
    message: str


def refused_values(exc: TypeMismatchError) -> list[RefusedValue]:
    """What a refusal names in ``params.validationErrors`` (reference 3): per field, the offending value.
    Empty when it names nothing usable (no details, or no offendingValue)."""
    errors = exc.params.get("validationErrors") if isinstance(exc.params, dict) else None
    if not isinstance(errors, dict):
        return []
    return [
        RefusedValue(str(name), detail["offendingValue"], exc.field_errors.get(name) or exc.message)
        for name, detail in errors.items()
        if isinstance(detail, dict) and "offendingValue" in detail
    ]


_MISSING = object()


def _value_at(data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        return _MISSING
    if path in data:
        return data[path]
    head, dot, rest = path.partition(".")
    return _value_at(data.get(head), rest) if dot else _MISSING


def _key(value: Any) -> str:
    # JSON text tells apart what == does not: True and 1, "1" and 1.
    return json.dumps(value, sort_keys=True, default=str)


def _keys(value: Any) -> set[str]:
    """The forms in which Iterable may name ``value``: itself, an item of it (arrays are allowed for
    every type), or its text (an object or array named as a string)."""
    keys = {_key(value)}
    if isinstance(value, list | dict):
        keys |= {_key(json.dumps(value)), _key(str(value))}
    if isinstance(value, list):
        keys |= {_key(item) for item in value}
    return keys


class RefusedValues:
    """Refused values by field, to find the records that carry one.

    A field's type never changes once set (reference 3), so a value refused once is refused again
    wherever it comes back: one sync keeps what it learned (up to LIMIT values) and fails later
    records carrying it without sending them.
    """

    LIMIT = 1000

    def __init__(self, refusals: Iterable[RefusedValue] = ()) -> None:
        self.by_field: dict[str, dict[str, RefusedValue]] = {}
        self.size = 0
        self.add(refusals)

    def add(self, refusals: Iterable[RefusedValue]) -> None:
        for refusal in refusals:
            values = self.by_field.setdefault(refusal.field, {})
            if self.size < self.LIMIT and _key(refusal.value) not in values:
                values[_key(refusal.value)] = refusal
                self.size += 1

    def carried_by(self, record: dict[str, Any]) -> list[RefusedValue]:
        data = record.get("dataFields")
        found: list[RefusedValue] = []
        # A copy: the pushes of one run in flight at once share what it learned, and one may add a
        # field while another reads.
        for field, values in tuple(self.by_field.items()):
            value = _value_at(data, field)
            if value is not _MISSING:
                found += [values[key] for key in _keys(value) if key in values]
        return found


def refused_result(identifier: str, refusals: list[RefusedValue]) -> RecordResult:
    """A record that carries refused values fails for good: the same value is refused every time."""
    return RecordResult(identifier, False, TYPE_MISMATCH, "; ".join(dict.fromkeys(r.message for r in refusals)))
