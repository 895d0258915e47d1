"""Customer.io's 2xx answers, read strictly: the v2 batch (200 ``{}`` or 207 ``errors[]``), the region
check and the App API's people.

A 2xx counts only in its documented shape (reference 1.4, 3.3, 5). Anything else (a proxy's page,
an empty or cut-off body, ``{"status": "queued"}``, a 207 naming no item or one the request did not
have) proves nothing: its records fail retryably as ``unexpected_answer``. Sending an identify again
is harmless (last write wins), counting it delivered would lose it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from integrations.destinations.base import RecordResult, UnexpectedAnswerError
from integrations.destinations.customerio.client import describe_item, excerpt

UNEXPECTED_ANSWER = UnexpectedAnswerError.default_code
# A 207 item's reason (reference 3.3: "invalid", "required" seen). Sending the same item again gets the
# same refusal, whatever the reason: none of them is retryable.
REASON_CODES = {"invalid": "invalid", "required": "required"}


def unexpected_message(what: str, status: int, body: Any, problem: str) -> str:
    return (
        f"Customer.io's answer to {what} was not the documented one ({problem}; HTTP {status}: {excerpt(body)}). "
        "Nothing proves it took effect."
    )


def _is_index(value: Any, size: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < size


def batch_failures(status: int, body: Any, size: int) -> tuple[dict[int, list[dict[str, str]]], str]:
    """The failed items of a 2xx batch answer by index, and "" ; or ({}, what is wrong with the answer).

    200 is ``{}`` (components.responses.200: "an empty object"). 207 is ``{"errors": [...]}`` whose
    items each name a ``batch_index`` of the request (0-based) and say why; "at least one object in the
    batch was invalid", so an empty list does not fit either.
    """
    if status == 200:
        return ({}, "") if body == {} else ({}, "a 200 is an empty object")
    if status != 207:
        return {}, f"HTTP {status} is not an answer the batch endpoint gives"
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        return {}, "a 207 without a list of errors"
    failed: dict[int, list[dict[str, str]]] = {}
    for error in errors:
        if not isinstance(error, dict) or not _is_index(error.get("batch_index"), size):
            return {}, f"an error names no item of the {size} sent"
        failed.setdefault(error["batch_index"], []).append(
            {k: str(error.get(k) or "") for k in ("reason", "field", "message")}
        )
    return failed, ""


def failed_result(identifier: str, errors: list[dict[str, str]]) -> RecordResult:
    reason = next((e["reason"] for e in errors if e["reason"]), "")
    code = REASON_CODES.get(reason, "invalid")
    message = "Customer.io refused this person: " + "; ".join(describe_item(e) for e in errors)
    return RecordResult(identifier, False, code, message, destination_code=reason)


def read_batch_answer(
    *, what: str, status: int, body: Any, operations: list[dict[str, Any]], identifier_of: Callable[[dict], str]
) -> list[RecordResult]:
    """One result per operation, in order, from a 2xx answer to a batch."""
    failed, problem = batch_failures(status, body, len(operations))
    if problem:
        message = unexpected_message(what, status, body, problem)
        return [RecordResult(identifier_of(op), False, UNEXPECTED_ANSWER, message, retryable=True) for op in operations]
    return [
        failed_result(identifier_of(op), failed[index]) if index in failed else RecordResult(identifier_of(op), True)
        for index, op in enumerate(operations)
    ]


@dataclass(frozen=True)
class Region:
    region: str
    environment_id: int
    url: str


def read_region(status: int, body: Any) -> Region:
    """``GET /api/v1/accounts/region``'s 200 (reference 1.4): ``region`` us or eu and an integer
    ``environment_id`` (the workspace); ``url`` read but never used, hosts come from the settings."""
    if isinstance(body, dict):
        region, environment_id, url = body.get("region"), body.get("environment_id"), body.get("url")
        if (
            region in ("us", "eu")
            and isinstance(environment_id, int)
            and not isinstance(environment_id, bool)
            and isinstance(url, str | type(None))
        ):
            return Region(region, environment_id, url or "")
    raise UnexpectedAnswerError(
        unexpected_message("the region check", status, body, "no region and environment_id"), status=status
    )


def _customer_identifier(customer: dict[str, Any], kind: str) -> str | None:
    for source in (customer.get("identifiers"), customer, customer.get("attributes")):
        if isinstance(source, dict) and isinstance(source.get(kind), str) and source[kind]:
            return source[kind]
    return None


def found_people(status: int, body: Any, kind: str, asked: list[str]) -> set[str]:
    """The ids of ``asked`` that getPeopleById's answer holds (reference 5: ``{"customers":
    [{"customer": {...}}]}``, unknown ids left out). Emails compare without case (reference 2.1)."""
    wanted = {(a.lower() if kind == "email" else a): a for a in asked}
    customers = body.get("customers") if isinstance(body, dict) else None
    problem = ""
    found: set[str] = set()
    if not isinstance(customers, list):
        problem = "no list of customers"
    elif len(customers) > len(wanted):
        problem = f"{len(customers)} people for {len(wanted)} ids"
    else:
        for item in customers:
            customer = item.get("customer") if isinstance(item, dict) else None
            value = _customer_identifier(customer, kind) if isinstance(customer, dict) else None
            value = value.lower() if value is not None and kind == "email" else value
            if value not in wanted:
                problem = f"a person who is none of the {kind}s asked for"
                break
            found.add(wanted[value])
    if problem:
        raise UnexpectedAnswerError(unexpected_message("the people lookup", status, body, problem), status=status)
    return found


def subscription_topics(status: int, body: Any) -> list[dict[str, Any]]:
    """The topics of GET /v1/subscription_topics: ``{"topics": [{"id": int, "name": str, ...}]}``."""
    topics = body.get("topics") if isinstance(body, dict) else None
    if not isinstance(topics, list) or not all(
        isinstance(t, dict)
        and isinstance(t.get("id"), int)
        and not isinstance(t.get("id"), bool)
        and isinstance(t.get("name"), str)
        for t in topics
    ):
        raise UnexpectedAnswerError(
            unexpected_message("the subscription topics", status, body, "no list of topics with ids and names"),
            status=status,
        )
    return topics
