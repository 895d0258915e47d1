"""Iterable's answers read strictly (issue 10, items 7 and 8), against the emulator over real HTTP.

A 2xx counts only in its documented shape (reference 2.2, 6.3, 6.4); a refusal that names its values
(RequestFieldsTypesMismatched, params.validationErrors, reference 3) costs one round, not a bisection.
"""

from __future__ import annotations

import pytest

from integrations.destinations import base
from integrations.destinations.iterable import IterableClient, IterableDestination
from integrations.destinations.iterable.answers import FIELDS_FILTERED_OUT, TYPE_MISMATCH, UNEXPECTED_ANSWER

pytestmark = pytest.mark.django_db

BULK = "/api/users/bulkUpdate"
PEOPLE = [{"email": f"{name}@example.com", "dataFields": {"firstName": name}} for name in ("ada", "bob", "cy")]


@pytest.fixture
def destination(iterable) -> IterableDestination:
    return IterableDestination(IterableClient(region="us", api_key=iterable.keys.server_side), project_type="hybrid")


def _bulk_requests(iterable) -> int:
    return iterable.stats()["counts"].get(BULK, 0)


def _not_understood(results) -> bool:
    return all(not r.delivered and r.retryable and r.code == UNEXPECTED_ANSWER for r in results)


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 200, "raw": "<html><body><h1>Welcome to our proxy</h1></body></html>"},
        {"status": 202, "body": {"msg": "Accepted"}},
        {"status": 200, "raw": ""},
        {"status": 204, "raw": ""},
        {"status": 200, "body": {"msg": "", "code": "Success", "params": None}},  # track's shape, not bulkUpdate's
        {"status": 200, "body": {"successCount": 3, "failCount": "0"}},
        {"status": 200, "body": {"successCount": True, "failCount": 0}},
        {"status": 200, "body": {"successCount": 3, "failCount": 0, "failedUpdates": ["ada@example.com"]}},
    ],
    ids=["html", "accepted", "empty", "no-content", "envelope", "string-count", "bool-count", "bad-failed-updates"],
)
def test_a_2xx_that_is_not_the_documented_answer_delivers_nothing(destination, iterable, answer):
    iterable.fault(BULK, **answer)
    results = destination.push(PEOPLE)
    assert [r.identifier for r in results] == [p["email"] for p in PEOPLE]
    assert _not_understood(results)
    assert "not the documented one" in results[0].message and f"HTTP {answer['status']}" in results[0].message
    assert iterable.users() == []  # a proxy answered: none of them reached Iterable


@pytest.mark.parametrize("path", [BULK, "/api/lists/subscribe", "/api/events/track"])
def test_a_2xx_with_a_code_iterable_does_not_document_is_not_understood_and_retryable(destination, iterable, path):
    # Not a refusal either: only the documented codes (reference 5) are; anything else proves nothing.
    iterable.fault(path, status=200, raw='{"msg": "Accepted", "code": "Queued"}', content_type="application/json")
    call = {
        BULK: lambda: destination.push(PEOPLE),
        "/api/lists/subscribe": lambda: destination.subscribe(iterable.add_list("Leads"), PEOPLE),
        "/api/events/track": lambda: destination.track("formSubmitted", PEOPLE[0], {}),
    }[path]
    with pytest.raises(base.UnexpectedAnswerError) as caught:
        call()
    assert caught.value.retryable and caught.value.code == UNEXPECTED_ANSWER
    assert "'Queued' is not one of Iterable's" in caught.value.message
    assert iterable.stats()["arrived"][path] == 1  # not sent again at once: a later run retries


def test_a_2xx_carrying_a_documented_code_is_that_refusal(destination, iterable):
    iterable.fault(BULK, status=200, body={"msg": "bad email", "code": "InvalidEmailAddressError", "params": None})
    with pytest.raises(base.ValidationError) as caught:
        destination.push(PEOPLE)
    assert not caught.value.retryable and caught.value.code == "InvalidEmailAddressError"


def test_a_truncated_answer_is_not_a_delivery_and_the_resend_is(destination, iterable):
    iterable.fault(BULK, kind="truncate")
    results = destination.push(PEOPLE)
    assert _not_understood(results)
    assert iterable.user("ada@example.com") is not None  # it did arrive, but nothing proved it
    assert all(r.delivered for r in destination.push(PEOPLE))  # the retry: an upsert, harmless


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"successCount": 2, "failCount": 0}, "counted 2 updated and 0 failed of 3 sent"),
        ({"successCount": 3, "failCount": 1}, "counted 3 updated and 1 failed of 3 sent"),
        (
            {
                "successCount": 2,
                "failCount": 1,
                "failedUpdates": {"invalidEmails": ["ada@example.com", "cy@example.com"]},
            },
            "named 2 of the users sent as failed but counted 1",
        ),
    ],
)
def test_counts_that_do_not_add_up_deliver_nothing(destination, iterable, body, why):
    iterable.fault(BULK, status=200, body=body)
    results = destination.push(PEOPLE)
    assert _not_understood(results) and why in results[0].message


def test_failures_counted_but_not_named_cannot_be_told_from_the_delivered(destination, iterable):
    body = {"successCount": 1, "failCount": 2, "failedUpdates": {"forgottenEmails": ["bob@example.com"]}}
    iterable.fault(BULK, status=200, body=body)
    ada, bob, cy = destination.push(PEOPLE)
    assert (bob.delivered, bob.code, bob.retryable) == (False, "forgotten", False)  # named: its own reason
    assert _not_understood([ada, cy]) and "counted 2 failures but named 1" in ada.message


def test_a_documented_answer_is_read_as_before(destination, iterable):
    body = {"successCount": 2, "failCount": 1, "invalidEmails": ["BOB@example.com"]}  # only the deprecated list
    iterable.fault(BULK, status=200, body=body)
    ada, bob, cy = destination.push([PEOPLE[0], {**PEOPLE[1], "email": "BOB@example.com"}, PEOPLE[2]])
    assert (ada.delivered, cy.delivered, bob.delivered, bob.code) == (True, True, False, "invalid_identifier")


def test_dropped_fields_deliver_the_record_with_a_warning(iterable):
    # A project that drops unknown fields, a request that does not ask to create them (reference 2.2).
    iterable.add_key("dropkey-123456", project_id=4, allow_new_fields=False)
    destination = IterableDestination(IterableClient(region="us", api_key="dropkey-123456"))
    ada, bob = destination.push(
        [
            {"email": "ada@example.com", "dataFields": {"firstName": "Ada", "shoeSize": 38, "pet": {"name": "Rex"}}},
            {"email": "bob@example.com", "dataFields": {"firstName": "Bob"}},
        ]
    )
    assert (ada.delivered, ada.code) == (True, FIELDS_FILTERED_OUT)
    assert "`shoeSize`, `pet`" in ada.message or "`pet`, `shoeSize`" in ada.message
    assert (bob.delivered, bob.code, bob.message) == (True, "", "")  # it carried none of them
    assert iterable.user("ada@example.com", project_id=4)["dataFields"] == {"firstName": "Ada"}


def test_subscribe_reads_its_answer_strictly(destination, iterable):
    list_id = iterable.add_list("Leads")
    assert all(r.delivered for r in destination.subscribe(list_id, PEOPLE))
    iterable.fault("/api/lists/subscribe", status=200, raw="<html>Bad gateway</html>")
    assert _not_understood(destination.subscribe(list_id, PEOPLE))
    iterable.fault("/api/lists/subscribe", status=200, body={"successCount": 1, "failCount": 0})
    assert _not_understood(destination.subscribe(list_id, PEOPLE))


@pytest.mark.parametrize(
    "answer",
    [{"status": 202, "body": {"msg": "Accepted"}}, {"status": 200, "raw": ""}, {"kind": "truncate"}],
    ids=["accepted", "empty", "truncated"],
)
def test_track_needs_a_success_envelope(destination, iterable, answer):
    destination.track("formSubmitted", PEOPLE[0], {})  # the documented answer passes
    iterable.fault("/api/events/track", **answer)
    with pytest.raises(base.UnexpectedAnswerError) as caught:
        destination.track("formSubmitted", PEOPLE[0], {})
    assert caught.value.retryable and caught.value.code == UNEXPECTED_ANSWER


def test_a_lookup_answer_that_is_neither_a_user_nor_empty_is_not_understood(destination, iterable):
    iterable.fault("/api/users/getByEmail", status=200, raw="<html>Sign in to the proxy</html>")
    with pytest.raises(base.UnexpectedAnswerError):  # not "absent": that would overwrite an existing user
        destination.find_existing([PEOPLE[0]])


# --- Refused values cost one round (item 8) ---------------------------------------------------------


def _aged(*ages) -> list[dict]:
    return [{"email": f"u{i}@example.com", "dataFields": {"age": age}} for i, age in enumerate(ages)]


def test_a_refusal_naming_a_value_fails_its_carriers_and_sends_the_rest_at_once(destination, iterable):
    iterable.set_fields({"age": "long"})
    results = destination.push(_aged(40, "ten", 41, "ten", 42))
    assert [r.delivered for r in results] == [True, False, True, False, True]
    assert (results[1].code, results[1].retryable) == (TYPE_MISMATCH, False)
    assert results[1].message == "Iterable has 'age' as long, the value sent was 'ten' (string, keyword)"
    assert _bulk_requests(iterable) == 2  # the refusal, then the rest: no bisection
    assert iterable.user("u0@example.com")["dataFields"]["age"] == 40 and iterable.user("u1@example.com") is None


def test_a_value_refused_once_fails_later_records_of_the_sync_unsent(destination, iterable):
    iterable.set_fields({"age": "long"})
    destination.push(_aged(40, "ten"))
    before = _bulk_requests(iterable)
    results = destination.push(_aged("ten", 5, ["ten"]))  # an array carries it too (reference 3)
    assert [(r.delivered, r.code) for r in results] == [(False, TYPE_MISMATCH), (True, ""), (False, TYPE_MISMATCH)]
    assert _bulk_requests(iterable) == before + 1  # no second refusal
    assert [len(r["body"]["users"]) for r in iterable.requests(BULK)][-1] == 1


@pytest.mark.parametrize(("report", "requests"), [("every", 2), ("first", 3)])
def test_each_field_named_or_only_the_first_the_outcome_is_the_same(destination, iterable, report, requests):
    # The reference's example names one field; whether Iterable names every refused field is open.
    iterable.configure(mismatch_report=report)
    iterable.set_fields({"age": "long", "vip": "boolean"})
    records = [
        {"email": "a@example.com", "dataFields": {"age": 1, "vip": True}},
        {"email": "b@example.com", "dataFields": {"age": "old", "vip": True}},
        {"email": "c@example.com", "dataFields": {"age": 3, "vip": "yes"}},
        {"email": "d@example.com", "dataFields": {"age": 4, "vip": False}},
    ]
    results = destination.push(records)
    assert [r.delivered for r in results] == [True, False, False, True]
    assert "'vip' as boolean" in results[2].message and "'age' as long" in results[1].message
    assert _bulk_requests(iterable) == requests


@pytest.mark.parametrize(
    "params",
    [
        None,
        {"validationErrors": {"age": {"expectedType": "long"}}},
        {"validationErrors": {"age": {"offendingValue": 7}}},
    ],
    ids=["no-params", "no-offending-value", "a-value-nobody-sent"],
)
def test_a_refusal_naming_nothing_usable_is_left_to_the_bisection(destination, iterable, params):
    body = {"msg": "The request does not have the same data types", "code": TYPE_MISMATCH, "params": params}
    iterable.fault(BULK, status=400, body=body)
    with pytest.raises(base.TypeMismatchError):
        destination.push(_aged(40, 41))
