"""After a person's upsert, the sync registers the device sent with them: Iterable registerDeviceToken (email or
userId, never both), Customer.io add_device; a failure is the record's, in plain words, and retried."""

from __future__ import annotations

import pytest

from flows.services import capture_flows, contacts_capture_batch
from integrations import engine
from integrations.sync import sync_now
from sync_logs.models import SyncRecord

pytestmark = pytest.mark.django_db

DEVICE = {"token": "tok-1", "platform": "APNS_SANDBOX", "applicationName": "com.acme.app", "dataFields": {"os": "18"}}


def _capture(flow, email: str, device=DEVICE):
    items = [{"flow": flow.public_id, "fields": {"email": email, "first_name": "Ada"}, "device": device}]
    (result,) = contacts_capture_batch(items=items, flows=capture_flows(workspace=flow.workspace, items=items))
    assert result.contact is not None, result.errors
    return result.contact


def test_iterable_gets_the_device_of_the_person(integration, flow, iterable):
    _capture(flow, "ada@example.com")
    run = engine.sync_run_execute(sync_now(integration=integration).pk)
    assert run.delivered == 1 and run.failed == 0
    (sent,) = [r["body"] for r in iterable.requests("/api/users/registerDeviceToken")]
    assert sent == {"email": "ada@example.com", "device": DEVICE}  # the email alone: never both identifiers
    (device,) = iterable.user("ada@example.com")["devices"]
    assert device["token"] == "tok-1" and device["platform"] == "APNS_SANDBOX"


def test_a_device_iterable_fails_to_take_is_tried_again(integration, flow, iterable, settings):
    settings.DESTINATION_MAX_RETRIES = 0
    iterable.fault("/api/users/registerDeviceToken", status=503, times=1)
    contact = _capture(flow, "ada@example.com")
    run = engine.sync_run_execute(sync_now(integration=integration).pk)
    record = SyncRecord.objects.get(run=run, contact=contact)
    assert record.status == "failed" and record.retryable
    assert record.error_message.startswith("The person is in Iterable, but registering the device failed")
    assert iterable.user("ada@example.com") is not None  # the upsert went; only the device waits


def test_customerio_gets_an_ios_device(workspace_a, alice, flow, customerio, customerio_integration):
    us, integration = customerio.us, customerio_integration
    _capture(flow, "ada@example.com")
    run = engine.sync_run_execute(sync_now(integration=integration).pk)
    assert run.delivered == 1 and run.failed == 0
    person = customerio.person(us.site_id, "ada@example.com")
    assert person["devices"] == [
        {"token": "tok-1", "platform": "ios", "attributes": {"app_name": "com.acme.app", "os": "18"}}
    ]


def _disable(client, workspace, body):
    from flows.services import capture_token_rotate

    token = capture_token_rotate(workspace=workspace, actor=None)
    return client.post(
        "/api/v1/devices/disable",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_a_device_disable_goes_through_the_outbox_and_is_logged(integration, flow, iterable, client):
    _capture(flow, "ada@example.com")
    engine.sync_run_execute(sync_now(integration=integration).pk)
    response = _disable(client, integration.workspace, {"token": "tok-1", "email": "Ada@example.com"})
    assert response.status_code == 202 and response.json() == {"status": "queued", "destinations": 1}
    run = engine.sync_run_execute(sync_now(integration=integration).pk)
    assert run.delivered == 1
    (sent,) = [r["body"] for r in iterable.requests("/api/users/disableDevice")]
    assert sent == {"token": "tok-1", "email": "ada@example.com"}
    (device,) = iterable.user("ada@example.com")["devices"]
    assert device["endpointEnabled"] is False
    record = SyncRecord.objects.get(run=run)
    assert (record.identifier, record.status, record.contact_id) == ("ada@example.com", "delivered", None)
    assert record.payload == {"disable_device": {"token": "tok-1", "email": "ada@example.com"}}


def test_a_device_disable_that_fails_is_retried(integration, flow, iterable, client, settings):
    settings.DESTINATION_MAX_RETRIES = 0
    iterable.fault("/api/users/disableDevice", status=503, times=1)
    _disable(client, integration.workspace, {"token": "tok-9"})
    run = engine.sync_run_execute(sync_now(integration=integration).pk)
    record = SyncRecord.objects.get(run=run)
    assert record.status == "failed" and record.retryable and record.identifier == "device …tok-9"
    assert "Disabling the device failed" in record.error_message
    from integrations.models import OutboxItem

    row = OutboxItem.objects.get(contact=None)
    assert row.status == "pending" and row.attempts == 1  # back in the queue, after its backoff


def test_a_device_disable_is_checked_field_by_field(integration, client):
    response = _disable(client, integration.workspace, {"token": "", "user_id": 7, "extra": 1})
    assert response.status_code == 422
    assert set(response.json()["error"]["fields"]) == {"token", "user_id", "extra"}


def test_customerio_needs_the_person_to_remove_a_device(
    workspace_a, alice, flow, customerio, customerio_integration, client
):
    us, integration = customerio.us, customerio_integration
    _capture(flow, "ada@example.com")
    engine.sync_run_execute(sync_now(integration=integration).pk)
    _disable(client, workspace_a, {"token": "tok-1"})  # no person: Customer.io cannot
    _disable(client, workspace_a, {"token": "tok-1", "email": "ada@example.com"})
    run = engine.sync_run_execute(sync_now(integration=integration).pk)
    assert customerio.person(us.site_id, "ada@example.com")["devices"] == []
    statuses = sorted(SyncRecord.objects.filter(run=run).values_list("status", flat=True))
    assert statuses == ["delivered", "failed"]


def test_customerio_reads_a_user_id_as_the_person_id(customerio, customerio_integration, flow, client):
    _capture(flow, "ada@example.com")
    engine.sync_run_execute(sync_now(integration=customerio_integration).pk)
    # Given by id alone (no contact has this email): the capture API's user_id is the person's id there.
    _disable(client, customerio_integration.workspace, {"token": "tok-1", "user_id": "ada@example.com"})
    run = engine.sync_run_execute(sync_now(integration=customerio_integration).pk)
    assert run.delivered == 1
    assert customerio.person(customerio.us.site_id, "ada@example.com")["devices"] == []


def test_every_slice_finds_its_commands_without_reading_the_backlog(integration, flow):
    # Each slice of each run looks for command rows first: behind a backlog of contacts that look must not
    # walk the pending contact rows (outbox_pending) to find none.
    from django.db import connection
    from django.utils import timezone

    from flows.models import Contact
    from integrations.models import OutboxItem

    contacts = Contact.objects.bulk_create(
        Contact(workspace=flow.workspace, flow=flow, email=f"c{i}@example.com", data={}) for i in range(3000)
    )
    OutboxItem.objects.bulk_create(OutboxItem(integration=integration, contact=c) for c in contacts)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboxItem._meta.db_table}")
    plan = engine.commands_due(integration_id=integration.pk, now=timezone.now()).explain()
    assert "Index Cond: (contact_id IS NULL)" in plan and "outbox_pending" not in plan, plan
