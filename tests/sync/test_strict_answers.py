"""The engine on answers it cannot believe, dropped fields and refused values (issue 10, items 7 and 8)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from flows.services import contact_capture
from integrations import engine
from integrations.destinations.iterable import IterableDestination
from integrations.models import OutboxItem
from integrations.sync import sync_now
from sync_logs.explain import explain
from sync_logs.models import SyncRecord, SyncRun

pytestmark = pytest.mark.django_db

BULK = "/api/users/bulkUpdate"
PROXY_PAGE = "<html><head><title>502</title></head><body>upstream unavailable</body></html>"


def _run(integration) -> SyncRun:
    return engine.sync_run_execute(sync_now(integration=integration).pk)


def _due_now() -> None:
    OutboxItem.objects.update(next_attempt_at=timezone.now())


def _bulk_requests(iterable) -> int:
    return iterable.stats()["counts"].get(BULK, 0)


def test_a_proxy_page_answered_with_200_is_not_a_delivery(integration, capture, iterable):
    capture(120)
    iterable.fault(BULK, status=200, raw=PROXY_PAGE)
    run = _run(integration)
    assert (run.status, run.delivered, run.failed) == ("failed", 0, 120)
    assert iterable.users() == []
    record = SyncRecord.objects.filter(run=run).first()
    assert (record.status, record.error_code, record.retryable) == ("failed", "unexpected_answer", True)
    assert "Will retry" in record.error_message and "upstream unavailable" in record.error_message
    assert (
        "nothing proves this contact arrived"
        in explain(record.error_code, record.error_message, destination=IterableDestination).summary
    )
    assert set(OutboxItem.objects.values_list("status", "attempts")) == {("pending", 1)}
    _due_now()
    assert _run(integration).delivered == 120 and len(iterable.users()) == 120


def test_a_truncated_answer_is_retried_and_the_resend_delivers(integration, capture, iterable):
    capture(3)
    iterable.fault(BULK, kind="truncate")
    assert _run(integration).failed == 3
    _due_now()
    assert _run(integration).delivered == 3


def test_fields_iterable_dropped_are_a_warning_on_delivered_rows(integration, capture, iterable):
    capture(2, notes="from the booth")
    body = {"successCount": 2, "failCount": 0, "filteredOutFields": ["notes"], "failedUpdates": {}}
    iterable.fault(BULK, status=200, body=body)
    run = _run(integration)
    assert (run.status, run.delivered) == ("succeeded", 2)  # the users were updated: not failures
    record = SyncRecord.objects.filter(run=run).first()
    assert (record.status, record.error_code) == ("delivered", "fields_filtered_out")
    assert "`notes`" in record.error_message
    why = explain(record.error_code, record.error_message, destination=IterableDestination)
    assert "Iterable dropped `notes`" in why.summary and "Create new field" in why.action
    assert set(OutboxItem.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.parametrize("fault", [{"status": 200, "raw": ""}, {"status": 503}], ids=["empty-200", "outage"])
def test_a_list_subscription_not_confirmed_sends_the_contact_again(integration, capture, iterable, settings, fault):
    settings.DESTINATION_MAX_RETRIES = 0
    integration.list_id, integration.list_name = iterable.add_list("Leads"), "Leads"
    integration.event_name = "formSubmitted"
    integration.save()
    capture(2)
    iterable.fault("/api/lists/subscribe", **fault)
    run = _run(integration)
    assert run.failed == 2
    record = SyncRecord.objects.filter(run=run).first()
    assert (
        record.retryable and "The person is in Iterable, but adding to the list 'Leads' failed" in record.error_message
    )
    assert iterable.events() == []  # no event yet: it comes with the resend
    _due_now()
    assert _run(integration).delivered == 2
    assert integration.list_id in iterable.user("user0@example.com")["dataFields"]["userListIds"]
    assert len(iterable.events()) == 2


def test_an_event_not_confirmed_sends_the_contact_again(integration, capture, iterable):
    integration.event_name = "formSubmitted"
    integration.save()
    capture(2)
    iterable.fault("/api/events/track", status=202, body={"msg": "Accepted"})
    run = _run(integration)
    assert (run.delivered, run.failed) == (1, 1)
    failed = SyncRecord.objects.get(run=run, status="failed")
    assert failed.error_code == "unexpected_answer" and "tracking 'formSubmitted' failed" in failed.error_message


def test_a_bad_list_is_noted_on_a_delivered_record(integration, capture, iterable):
    integration.list_id, integration.list_name = 999, "Gone"  # refused for good: retrying would not help
    integration.save()
    capture(1)
    run = _run(integration)
    record = SyncRecord.objects.get(run=run)
    assert record.status == "delivered" and "Delivered; adding to the list 'Gone' failed" in record.error_message


def test_refused_values_cost_one_round_not_a_bisection(integration, flow, iterable, settings):
    # Iterable types a new field by its first value (reference 3): `notes` becomes a date, and the
    # contacts whose notes are not dates are refused. Each refusal names the value (params.validationErrors).
    settings.SYNC_BATCH_SIZE = 10
    for i in range(30):
        notes = "not sure" if i % 10 == 4 else f"2024-05-{i % 28 + 1:02d}"
        contact_capture(flow=flow, raw={"email": f"user{i}@example.com", "notes": notes}, source="api")
    before = _bulk_requests(iterable)  # connecting made one (the write probe)
    run = _run(integration)
    assert (run.delivered, run.failed) == (27, 3)
    # Batch 1: refused once, then sent without its carrier; batches 2 and 3 fail the known value unsent.
    assert _bulk_requests(iterable) - before == 4
    failed = SyncRecord.objects.filter(run=run, status="failed")
    assert {r.identifier for r in failed} == {"user4@example.com", "user14@example.com", "user24@example.com"}
    record = failed.first()
    assert (record.error_code, record.destination_code) == ("type_mismatch", "RequestFieldsTypesMismatched")
    assert not record.retryable
    assert (
        "Iterable rejected the field `notes`: it is a date there"
        in explain(record.error_code, record.error_message, destination=IterableDestination).summary
    )
    assert OutboxItem.objects.filter(status="failed").count() == 3


def test_a_refusal_naming_nothing_is_still_bisected(integration, capture, iterable):
    capture(4)
    body = {"msg": "The request does not have the same data types", "code": "RequestFieldsTypesMismatched"}
    iterable.fault(BULK, status=400, body={**body, "params": None})
    run = _run(integration)
    assert (run.status, run.delivered) == ("succeeded", 4)
    sent = [len(r["body"]["users"]) for r in iterable.requests(BULK) if r["body"]["users"]]
    assert sent == [2, 2]  # the halves (the refused whole came before the emulator's log)
