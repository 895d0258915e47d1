"""The sync engine against the emulator and real PostgreSQL, run in-process (no worker)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from flows.services import contact_capture
from integrations import engine
from integrations.models import Integration, OutboxItem
from integrations.sync import (
    NothingToSync,
    SyncNotStarted,
    integration_pause,
    integration_resume,
    retry_failed,
    sync_now,
)
from sync_logs import ledger
from sync_logs.models import SyncRecord, SyncRun

pytestmark = pytest.mark.django_db


def _run(integration) -> SyncRun:
    run = sync_now(integration=integration)
    return engine.sync_run_execute(run.pk)


def _statuses() -> dict[str, int]:
    return {
        s: OutboxItem.objects.filter(status=s).count()
        for s in ("pending", "in_flight", "delivered", "skipped", "failed")
        if OutboxItem.objects.filter(status=s)
    }


def test_captured_contacts_are_queued_and_delivered_as_mapped(integration, capture, iterable):
    capture(3, age=30)
    assert _statuses() == {"pending": 3}
    run = _run(integration)
    assert (run.status, run.total, run.delivered, run.skipped, run.failed) == ("succeeded", 3, 3, 0, 0)
    user = iterable.user("user1@example.com")
    assert user["dataFields"] == {"firstName": "User1", "age": 30}
    records = SyncRecord.objects.filter(run=run)
    assert records.count() == 3 and {r.status for r in records} == {"delivered"}
    assert records.get(identifier="user2@example.com").payload == {
        "email": "user2@example.com",
        "dataFields": {"firstName": "User2", "age": 30},
    }
    assert _statuses() == {"delivered": 3}
    with pytest.raises(NothingToSync, match="all contacts are up to date"):  # a repeat starts no empty run
        sync_now(integration=integration)
    assert SyncRun.objects.count() == 1


def test_a_contact_is_queued_only_for_connected_integrations(integration, capture, workspace_b):
    from tests.factories import make_flow

    other = make_flow(workspace_b)
    contact_capture(flow=other, raw={"email": "b@example.com"})
    capture(1)
    assert OutboxItem.objects.count() == 1 and OutboxItem.objects.get().integration == integration


def test_one_bad_record_in_a_batch_fails_alone(integration, capture, iterable):
    # Iterable types a new field by its first value: "2024-01-01" makes `notes` a date, and
    # "hello" in the same batch is then refused, failing the whole bulk request (reference 3).
    capture(1, notes="2024-01-01")
    contact_capture(flow=integration.workspace.flows.get(), raw={"email": "bad@example.com", "notes": "hello"})
    capture(2, notes="2024-02-02")
    run = _run(integration)
    assert (run.delivered, run.failed) == (3, 1) and run.status == "partial"
    bad = SyncRecord.objects.get(run=run, status="failed")
    assert bad.identifier == "bad@example.com" and (bad.error_code, bad.destination_code) == (
        "type_mismatch",
        "RequestFieldsTypesMismatched",
    )
    assert "Iterable has 'notes' as date" in bad.error_message
    assert OutboxItem.objects.get(contact__email="bad@example.com").status == "failed"


def test_a_batch_refused_as_too_large_is_split_and_delivered(integration, capture, iterable):
    capture(4)
    body = {"msg": "Request body too large", "code": "BatchTooLarge", "params": None}
    iterable.fault("/api/users/bulkUpdate", status=413, times=1, body=body)
    run = _run(integration)
    assert (run.status, run.delivered) == ("succeeded", 4)
    sent = [len(r["body"]["users"]) for r in iterable.requests("/api/users/bulkUpdate") if r["body"]["users"]]
    assert sent == [2, 2]  # the halves (the refused whole came before the emulator's log)


def test_a_bad_value_fails_its_record_before_sending(integration, capture):
    contact = capture(1)[0]
    contact.data["age"] = 36.5  # (contacts are immutable in the app; this stands for a stored legacy value)
    contact.save()
    run = _run(integration)
    record = SyncRecord.objects.get(run=run)
    assert record.status == "failed" and record.error_code == "mapping_error"
    assert "age → age: 36.5 is not a whole number" in record.error_message


def test_no_identifier_is_skipped_with_why(integration, flow):
    flow.fields.filter(key="email").update(required=False)
    contact_capture(flow=flow, raw={"first_name": "Nameless"})
    run = _run(integration)
    record = SyncRecord.objects.get(run=run)
    assert (record.status, record.error_code) == ("skipped", "no_identifier") and "no email" in record.error_message


def test_5xx_is_retried_later_with_backoff_then_delivered(integration, capture, iterable, settings):
    settings.DESTINATION_MAX_RETRIES = 1
    capture(2)
    iterable.fault("/api/users/bulkUpdate", status=503, times=2)
    run = _run(integration)
    assert run.failed == 2 and run.status == "failed"
    item = OutboxItem.objects.first()
    assert (item.status, item.attempts) == ("pending", 1) and item.next_attempt_at > timezone.now()
    assert "Will retry (attempt 2 of 5)" in SyncRecord.objects.filter(run=run).first().error_message
    with pytest.raises(NothingToSync, match="2 contact"):  # not due yet, and no empty run for it
        sync_now(integration=integration)
    OutboxItem.objects.update(next_attempt_at=timezone.now())
    assert _run(integration).delivered == 2


def test_a_retry_never_puts_back_values_a_newer_capture_delivered(integration, capture, iterable, settings):
    # The older capture fails and waits out its backoff; a newer capture of the same person is
    # delivered meanwhile. When the old one is retried it sends only what the newer one did not set.
    settings.DESTINATION_MAX_RETRIES = 0
    [old] = capture(1, first_name="Old", age=30, notes="from the booth")
    iterable.fault("/api/users/bulkUpdate", status=503, times=1)
    _run(integration)
    capture(1, first_name="New", age=31)
    assert _run(integration).delivered == 1  # the old row is not due yet
    OutboxItem.objects.filter(contact=old).update(next_attempt_at=timezone.now())
    run = _run(integration)
    assert run.delivered == 1
    assert iterable.user("user0@example.com")["dataFields"] == {
        "firstName": "New",
        "age": 31,
        "notes": "from the booth",
    }
    assert SyncRecord.objects.get(run=run).payload["dataFields"] == {"notes": "from the booth"}


def test_a_retry_with_nothing_newer_to_add_is_skipped_as_superseded(integration, capture, iterable):
    capture(1, first_name="Old")
    iterable.fault("/api/users/bulkUpdate", status=400, times=1, body={"code": "BadParams", "msg": "no"})
    _run(integration)  # a permanent failure: Retry (below) queues it again
    capture(1, first_name="New")
    _run(integration)
    run = engine.sync_run_execute(retry_failed(integration=integration, actor=None).run.pk)
    record = SyncRecord.objects.get(run=run)
    assert (record.status, record.error_code) == ("skipped", "superseded")
    assert iterable.user("user0@example.com")["dataFields"]["firstName"] == "New"


def test_the_check_uses_what_was_delivered_not_todays_mapping(integration, capture, iterable):
    # The newer capture went out without notes; notes are mapped since. The old row keeps its notes.
    capture(1, first_name="Old", notes="from the booth")
    iterable.fault("/api/users/bulkUpdate", status=400, times=1, body={"code": "BadParams", "msg": "no"})
    _run(integration)
    capture(1, first_name="New", notes="later")
    SyncRecord.objects.all().delete()  # start the log over: only the newer delivery below counts
    integration.mappings.filter(source_key="notes").update(target="")
    _run(integration)
    integration.mappings.filter(source_key="notes").update(target="notes")
    run = engine.sync_run_execute(retry_failed(integration=integration, actor=None).run.pk)
    assert SyncRecord.objects.get(run=run).payload["dataFields"] == {"notes": "from the booth"}
    assert iterable.user("user0@example.com")["dataFields"]["firstName"] == "New"


def test_a_backfilled_older_contact_does_not_overwrite_a_newer_one(integration, capture, iterable, alice):
    from integrations.sync import integration_sync_settings_save

    OutboxItem.objects.all().delete()
    integration.status = Integration.Status.DISCONNECTED  # captured before the integration was connected
    integration.save()
    capture(1, first_name="Old", age=30)
    integration.status = Integration.Status.CONNECTED
    integration.save()
    capture(1, first_name="New")
    _run(integration)
    integration_sync_settings_save(
        integration=integration,
        actor=alice,
        frequency=integration.frequency,
        overwrite_existing=True,
        backfill=True,
    )
    run = _run(integration)
    assert iterable.user("user0@example.com")["dataFields"] == {"firstName": "New", "age": 30}
    assert SyncRecord.objects.get(run=run).payload["dataFields"] == {"age": 30}


def test_retries_are_bounded(integration, capture, iterable, settings):
    settings.DESTINATION_MAX_RETRIES = 0
    settings.SYNC_MAX_ATTEMPTS = 2
    capture(1)
    iterable.fault("/api/users/bulkUpdate", status=500, times=10)
    _run(integration)
    OutboxItem.objects.update(next_attempt_at=timezone.now())
    run = _run(integration)
    item = OutboxItem.objects.get()
    assert (item.status, item.attempts) == ("failed", 2)
    assert "Gave up after 2 attempts" in SyncRecord.objects.get(run=run).error_message


def test_leave_existing_users_unchanged(integration, capture, iterable):
    from integrations.destinations import destination_for

    destination_for(integration).push([{"email": "user0@example.com", "dataFields": {"firstName": "Original"}}])
    integration.overwrite_existing = False
    integration.save()
    capture(2)
    run = _run(integration)
    assert (run.delivered, run.skipped) == (1, 1)
    skipped = SyncRecord.objects.get(run=run, status="skipped")
    assert skipped.identifier == "user0@example.com" and skipped.error_code == "existing_user"
    assert iterable.user("user0@example.com")["dataFields"]["firstName"] == "Original"
    assert iterable.user("user1@example.com")["dataFields"]["firstName"] == "User1"


def test_a_revoked_key_stops_the_run_and_keeps_every_record_pending(integration, capture, iterable):
    capture(3)
    iterable.reset()  # the key is gone
    run = _run(integration)
    assert run.status == "failed" and "Stopped" in run.error_summary
    assert _statuses() == {"pending": 3} and OutboxItem.objects.filter(attempts__gt=0).count() == 0
    integration.refresh_from_db()
    assert integration.status == "needs_attention" and "connect again" in integration.error_message.lower()
    with pytest.raises(SyncNotStarted, match="needs attention"):
        sync_now(integration=integration)


def test_drift_fails_the_affected_records_with_the_reason(integration, capture, iterable):
    capture(2, age=40)
    iterable.set_fields({"age": "string"})
    run = _run(integration)  # the run refreshes the schema first
    assert run.failed == 2
    assert "Iterable's field 'age' is now string" in SyncRecord.objects.filter(run=run).first().error_message


def test_a_second_sync_now_starts_nothing(integration, capture):
    capture(1)
    first = sync_now(integration=integration)
    with pytest.raises(SyncNotStarted, match="already running") as caught:
        sync_now(integration=integration)
    assert caught.value.run == first
    assert SyncRun.objects.count() == 1


def test_pause_keeps_capturing_and_resume_drains(integration, capture, alice):
    integration_pause(integration=integration, actor=alice)
    capture(2)
    assert _statuses() == {"pending": 2}
    with pytest.raises(SyncNotStarted, match="paused"):
        sync_now(integration=integration)
    integration_resume(integration=integration, actor=alice)
    assert _run(integration).delivered == 2


def test_abandoned_runs_give_their_records_back(integration, capture):
    capture(3)
    run = sync_now(integration=integration)
    SyncRun.objects.filter(pk=run.pk).update(status="running")
    engine.claim_batch(run=run, size=10)  # the claim moves the heartbeat; then the worker dies
    SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert _statuses() == {"in_flight": 3}
    assert ledger.sync_runs_reap() == 1
    assert SyncRun.objects.get(pk=run.pk).status == "abandoned" and _statuses() == {"pending": 3}
    assert set(OutboxItem.objects.values_list("sent_before", flat=True)) == {True}  # they may have gone
    assert _run(integration).delivered == 3


def test_duplicates_of_one_identifier_go_in_order_in_separate_batches(integration, flow, iterable):
    for name in ("First", "Second"):
        contact_capture(flow=flow, raw={"email": "same@example.com", "first_name": name})
    run = _run(integration)
    assert run.delivered == 2
    assert iterable.user("same@example.com")["dataFields"]["firstName"] == "Second"


def test_a_claim_walks_forward_from_where_the_last_one_ended(integration, capture):
    capture(5)
    run = SyncRun.objects.create(integration=integration, trigger="manual", status="running")
    ids = sorted(OutboxItem.objects.values_list("id", flat=True))
    assert [c.id for c in engine.claim_batch(run=run, size=10, after_id=ids[2])] == ids[3:]
    assert [c.id for c in engine.claim_batch(run=run, size=10)] == ids[:3]  # from the start: what is left


@pytest.mark.django_db(transaction=True)
def test_a_held_back_duplicate_goes_before_later_ones_when_pipelined(integration, flow, iterable, settings):
    """Batches of 2: [A1, A2] holds A2 back; the next batch must take A2 before A3, or A3's newer
    data would be overwritten by A2's older data (the writes of batch k overlap the claim of k+1)."""
    settings.SYNC_BATCH_SIZE = 2
    for raw in [
        {"email": "a@example.com", "first_name": "First"},
        {"email": "a@example.com", "first_name": "Second"},
        {"email": "b@example.com", "first_name": "Bee"},
        {"email": "a@example.com", "first_name": "Third"},
    ]:
        contact_capture(flow=flow, raw=raw)
    run = _run(integration)
    assert run.delivered == 4
    assert iterable.user("a@example.com")["dataFields"]["firstName"] == "Third"


def test_429_storm_slows_down_and_delivers_all(integration, capture, iterable, settings):
    settings.SYNC_BATCH_SIZE = 2
    iterable.configure(rate_limit_overrides={"users.bulkUpdate": 1}, retry_after=1)
    capture(6)
    run = _run(integration)
    assert run.delivered == 6
    assert iterable.stats()["rate_limited"].get("users.bulkUpdate", 0) >= 1


def test_mapping_missing_keeps_contacts_queued(integration, capture):
    integration.mappings.all().delete()
    capture(1)
    run = _run(integration)
    assert run.status == "failed" and "Map the fields first" in run.error_summary
    assert _statuses() == {"pending": 1}


@pytest.mark.django_db(transaction=True)
def test_two_claimers_never_take_the_same_row(integration, capture):
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED needs PostgreSQL")
    capture(40)
    run = SyncRun.objects.create(integration=integration, trigger="manual", status="running")
    taken: list[list[int]] = [[], []]
    barrier = threading.Barrier(2)

    def claim(slot: int) -> None:
        from django.db import connection as thread_connection

        barrier.wait()
        while True:
            items = engine.claim_batch(run=run, size=3)
            if not items:
                break
            taken[slot].extend(i.id for i in items)
        thread_connection.close()

    threads = [threading.Thread(target=claim, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(taken[0]) & set(taken[1])
    assert len(taken[0]) + len(taken[1]) == 40


@pytest.mark.django_db(transaction=True)
def test_concurrent_sync_now_starts_one_run(integration, capture):
    capture(1)
    results: list[str] = []
    barrier = threading.Barrier(4)

    def press() -> None:
        from django.db import connection as thread_connection

        barrier.wait()
        try:
            sync_now(integration=Integration.objects.get(pk=integration.pk))
            results.append("started")
        except SyncNotStarted:
            results.append("refused")
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=press) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["refused", "refused", "refused", "started"]
    assert SyncRun.objects.filter(integration=integration).count() == 1


def test_sync_now_from_the_tile_and_a_second_press(alice_client, integration, capture):
    capture(1)
    first = alice_client.post("/w/acme/integrations/iterable/sync-now/", follow=True)
    assert "Sync started." in first.content.decode()
    second = alice_client.post("/w/acme/integrations/iterable/sync-now/", follow=True)
    assert "A sync is already running" in second.content.decode()
    assert SyncRun.objects.count() == 1
    assert 'hx-trigger="every 1s"' in alice_client.get("/w/acme/integrations/iterable/").content.decode()
    run = SyncRun.objects.get()
    engine.sync_run_execute(run.pk)
    progress = alice_client.get(f"/w/acme/integrations/iterable/runs/{run.pk}/progress/").content.decode()
    assert 'data-status="succeeded"' in progress and "hx-trigger" not in progress  # finished: polling stops


def test_sync_settings_save_and_backfill(alice_client, integration, flow, iterable):
    from flows.models import Contact

    # Contacts captured before the integration existed have no outbox rows.
    Contact.objects.create(
        workspace=integration.workspace, flow=flow, data={"email": "old@example.com"}, email="old@example.com"
    )
    response = alice_client.post(
        "/w/acme/integrations/iterable/sync/", {"frequency": "60", "overwrite_existing": "0", "backfill": "on"}
    )
    assert response.status_code == 302
    integration.refresh_from_db()
    assert (integration.frequency, integration.overwrite_existing) == (60, False)
    assert integration.next_run_at > timezone.now()
    assert OutboxItem.objects.filter(contact__email="old@example.com", status="pending").exists()


def test_optional_list_subscription_and_event(alice_client, integration, capture, iterable):
    list_id = iterable.add_list("Trade show leads")
    response = alice_client.post(
        "/w/acme/integrations/iterable/sync/",
        {"frequency": "0", "overwrite_existing": "1", "list_id": str(list_id), "event_name": "formSubmitted"},
    )
    assert response.status_code == 302
    integration.refresh_from_db()
    assert (integration.list_id, integration.list_name, integration.event_name) == (
        list_id,
        "Trade show leads",
        "formSubmitted",
    )
    capture(2)
    run = _run(integration)
    assert run.delivered == 2
    assert list_id in iterable.user("user1@example.com")["dataFields"]["userListIds"]
    events = iterable.events()
    assert [e["eventName"] for e in events] == ["formSubmitted", "formSubmitted"]
    assert events[0]["dataFields"]["flowName"] == "Booth"


def test_extras_are_off_by_default(integration, capture, iterable):
    capture(1)
    _run(integration)
    assert iterable.events() == [] and iterable.stats()["counts"].get("/api/lists/subscribe") is None
