"""Retry of a run's failed records and of one record, end to end against the emulator."""

from __future__ import annotations

import pytest
from django.utils import timezone

from field_mapping.services import RowChoice, mapping_save
from flows.models import Contact
from flows.services import contact_capture
from integrations import engine
from integrations.models import OutboxItem
from sync_logs.models import SyncRecord, SyncRun
from workspaces.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def mismatch_run(integration, capture, run_sync):
    """A run in which one contact failed for good: its `age` (a decimal, stored before the form
    required whole numbers) does not fit Iterable's long field."""
    capture(2, age=30)
    bad = contact_capture(flow=integration.workspace.flows.get(), raw={"email": "bad@example.com"})
    Contact.objects.filter(pk=bad.pk).update(data={**bad.data, "age": 36.5})
    run = run_sync(integration)
    assert (run.delivered, run.failed) == (2, 1)
    return run


def _stop_syncing_age(integration) -> None:
    mapping_save(
        integration=integration,
        actor=integration.connected_by,
        choices=[
            RowChoice("email", "email"),
            RowChoice("first_name", "firstName"),
            RowChoice("notes", "notes", create_new=True),
        ],
    )


def _latest_run(integration) -> SyncRun:
    return SyncRun.objects.filter(integration=integration).order_by("-id").first()


def test_retry_a_run_fails_again_with_the_same_reason_until_fixed(
    alice_client, integration, mismatch_run, logs_url, iterable
):
    response = alice_client.post(logs_url(f"runs/{mismatch_run.pk}/retry/"))
    retry = _latest_run(integration)
    assert retry.pk != mismatch_run.pk and retry.trigger == "retry" and retry.status == "queued"
    assert response.status_code == 302 and response["Location"].endswith(f"/runs/{retry.pk}/")
    engine.sync_run_execute(retry.pk)
    again = SyncRecord.objects.get(run=retry)
    first = SyncRecord.objects.get(run=mismatch_run, status="failed")
    assert (again.status, again.error_code, again.error_message) == ("failed", first.error_code, first.error_message)
    assert AuditEvent.objects.filter(verb="integration.retry_requested", data__run=mismatch_run.pk).exists()

    # The admin fixes the mapping: age is not synced any more.
    _stop_syncing_age(integration)
    alice_client.post(logs_url(f"runs/{retry.pk}/retry/"))
    fixed = engine.sync_run_execute(_latest_run(integration).pk)
    assert (fixed.total, fixed.delivered, fixed.failed) == (1, 1, 0)
    assert iterable.user("bad@example.com")["dataFields"] == {}


def test_retry_one_record(alice_client, integration, mismatch_run, logs_url, iterable):
    record = SyncRecord.objects.get(run=mismatch_run, status="failed")
    _stop_syncing_age(integration)
    page = logs_url(f"runs/{mismatch_run.pk}/?status=failed")
    response = alice_client.post(logs_url(f"runs/{mismatch_run.pk}/records/{record.pk}/retry/"), {"next": page})
    taken_by = _latest_run(integration)
    # Back where the admin was, following the run that took it.
    assert response.status_code == 302 and response["Location"] == f"{page}&taken_by={taken_by.pk}"
    shown = alice_client.get(response["Location"]).content.decode()
    assert 'data-testid="taken-by"' in shown and f"run #{taken_by.pk} takes it" in shown and "every 1s" in shown
    run = engine.sync_run_execute(taken_by.pk)
    assert (run.trigger, run.total, run.delivered) == ("retry", 1, 1)
    assert OutboxItem.objects.get(contact=record.contact).status == "delivered"


def test_retry_never_redirects_off_site(alice_client, integration, mismatch_run, logs_url):
    record = SyncRecord.objects.get(run=mismatch_run, status="failed")
    response = alice_client.post(
        logs_url(f"runs/{mismatch_run.pk}/records/{record.pk}/retry/"), {"next": "https://evil.example/"}
    )
    assert f"/records/{record.pk}/?taken_by=" in response["Location"] and "evil" not in response["Location"]


def test_a_delivered_record_is_not_retried(alice_client, integration, mismatch_run, logs_url):
    record = SyncRecord.objects.filter(run=mismatch_run, status="delivered").first()
    alice_client.post(logs_url(f"runs/{mismatch_run.pk}/records/{record.pk}/retry/"))
    assert _latest_run(integration).pk == mismatch_run.pk


def test_retry_makes_backed_off_rows_due_now(
    alice_client, integration, capture, run_sync, iterable, logs_url, settings
):
    settings.DESTINATION_MAX_RETRIES = 0
    capture(3)
    iterable.fault("/api/users/bulkUpdate", status=503, times=1)
    outage = run_sync(integration)
    assert outage.failed == 3
    assert all(o.status == "pending" and o.next_attempt_at > timezone.now() for o in OutboxItem.objects.all())
    alice_client.post(logs_url(f"runs/{outage.pk}/retry/"))
    run = engine.sync_run_execute(_latest_run(integration).pk)
    assert (run.total, run.delivered) == (3, 3)
    assert {o.attempts for o in OutboxItem.objects.all()} == {1}  # a fresh budget, then one attempt


def test_retry_while_a_run_is_active_queues_for_that_run(alice_client, integration, mismatch_run, logs_url):
    from integrations.sync import sync_now

    contact_capture(flow=integration.workspace.flows.get(), raw={"email": "new@example.com"})
    active = sync_now(integration=integration)
    response = alice_client.post(logs_url(f"runs/{mismatch_run.pk}/retry/"), follow=True)
    assert "1 failed contact(s) queued again" in response.content.decode()
    assert OutboxItem.objects.get(contact__email="bad@example.com").status == "pending"
    done = engine.sync_run_execute(active.pk)
    assert done.total == 2  # the new contact, and the retried one: the running sync took it


def test_nothing_to_retry(alice_client, integration, capture, run_sync, logs_url):
    capture(1)
    run = run_sync(integration)
    response = alice_client.post(logs_url(f"runs/{run.pk}/retry/"), follow=True)
    assert "Nothing to retry" in response.content.decode()
    assert _latest_run(integration).pk == run.pk


def test_backfill_reset_requeues_everyone(integration, capture, run_sync, alice):
    from integrations.sync import backfill_reset

    capture(4)
    run_sync(integration)
    result = backfill_reset(integration=integration, actor=alice)
    assert result.count == 4 and result.run is not None
    assert OutboxItem.objects.filter(status="pending").count() == 4
    assert engine.sync_run_execute(result.run.pk).delivered == 4
    assert AuditEvent.objects.filter(verb="integration.backfill_reset").exists()


def test_a_run_whose_log_rows_were_purged_can_still_be_retried(alice_client, integration, mismatch_run, logs_url):
    from datetime import timedelta

    from sync_logs.ledger import sync_logs_purge

    long_ago = timezone.now() - timedelta(days=100)
    SyncRun.objects.filter(pk=mismatch_run.pk).update(created_at=long_ago, finished_at=long_ago)
    SyncRecord.objects.filter(run=mismatch_run).update(created_at=long_ago)  # a day with no partition: DEFAULT
    assert sync_logs_purge() == 3
    _stop_syncing_age(integration)
    alice_client.post(logs_url(f"runs/{mismatch_run.pk}/retry/"))
    run = engine.sync_run_execute(_latest_run(integration).pk)
    assert (run.trigger, run.total, run.delivered) == ("retry", 1, 1)


def test_retry_everything_includes_rows_waiting_for_their_backoff(integration, capture, run_sync, iterable, settings):
    from integrations.sync import retry_failed

    settings.DESTINATION_MAX_RETRIES = 0
    capture(2)
    iterable.fault("/api/users/bulkUpdate", status=503, times=1)
    run_sync(integration)
    assert retry_failed(integration=integration, actor=None).count == 2
