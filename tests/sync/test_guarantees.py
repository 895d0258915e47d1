"""The engine's guarantees (../shared/DESIGN.md, "The sync engine"), once per destination: the
in-process fake (the engine alone), then each destination's emulator over HTTP. In-process runs
here; tests/sync/test_worker_sync.py kills and races real workers."""

from __future__ import annotations

import pytest
from django.utils import timezone

from flows.services import contact_capture
from integrations import engine
from integrations.destinations import REGISTRY
from integrations.models import OutboxItem
from integrations.sync import NothingToSync, SyncNotStarted, integration_pause, integration_resume, sync_now
from sync_logs.models import SyncRecord, SyncRun
from tests.sync.destinations import CustomerIOHarness, FakeHarness, IterableHarness

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["fake", "iterable", "customerio"])
def harness(request, monkeypatch):
    if request.param == "fake":
        return FakeHarness(monkeypatch)
    if request.param == "iterable":
        return IterableHarness(request.getfixturevalue("iterable"))
    return CustomerIOHarness(request.getfixturevalue("customerio"))


@pytest.fixture
def connected(harness, workspace_a, alice, flow):
    integration = harness.connect(workspace_a, alice)
    harness.map(integration, alice)
    return integration


def _run(integration) -> SyncRun:
    return engine.sync_run_execute(sync_now(integration=integration).pk)


def _statuses() -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in OutboxItem.objects.values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def test_captured_contacts_arrive_as_mapped_with_a_log_row_each(harness, connected, capture):
    capture(3, age=30)
    run = _run(connected)
    assert (run.status, run.total, run.delivered) == ("succeeded", 3, 3)
    assert harness.people()["user1@example.com"] == {"first_name": "User1", "age": 30}
    assert SyncRecord.objects.filter(run=run, status="delivered").count() == 3
    assert _statuses() == {"delivered": 3}
    with pytest.raises(NothingToSync):  # nothing left: a repeat starts no run
        sync_now(integration=connected)


def test_one_refused_person_fails_alone_with_the_reason(harness, connected, capture, flow):
    extra = harness.refuse("bad@example.com")
    capture(2)
    contact_capture(flow=flow, raw={"email": "bad@example.com", "first_name": "Bad", **extra}, source="api")
    run = _run(connected)
    assert (run.status, run.delivered, run.failed) == ("partial", 2, 1)
    failed = SyncRecord.objects.get(run=run, status="failed")
    assert failed.identifier == "bad@example.com" and failed.error_message and not failed.retryable
    assert "bad@example.com" not in harness.people() and len(harness.people()) == 2


def test_an_outage_is_retried_later_and_then_delivered(harness, connected, capture, settings):
    settings.DESTINATION_MAX_RETRIES = 0
    harness.outage(times=1)
    capture(2)
    first = _run(connected)
    assert first.failed == 2 and SyncRecord.objects.filter(run=first, retryable=True).count() == 2
    assert _statuses() == {"pending": 2}  # back in the queue, after a backoff
    OutboxItem.objects.update(next_attempt_at=timezone.now())
    second = _run(connected)
    assert second.delivered == 2 and set(harness.people()) == {"user0@example.com", "user1@example.com"}


def test_revoked_credentials_stop_the_run_and_keep_every_contact_queued(harness, connected, capture):
    capture(3)
    harness.revoke()
    run = _run(connected)
    assert run.status == "failed" and "Stopped" in run.error_summary
    assert _statuses() == {"pending": 3} and not OutboxItem.objects.filter(attempts__gt=0).exists()
    connected.refresh_from_db()
    assert connected.status == "needs_attention" and REGISTRY[connected.kind].label in connected.error_message
    with pytest.raises(SyncNotStarted, match="needs attention"):
        sync_now(integration=connected)


def test_pause_keeps_capturing_and_resume_drains(harness, connected, capture, alice):
    integration_pause(integration=connected, actor=alice)
    capture(2)
    with pytest.raises(SyncNotStarted, match="paused"):
        sync_now(integration=connected)
    assert _statuses() == {"pending": 2}
    integration_resume(integration=connected, actor=alice)
    assert _run(connected).delivered == 2 and len(harness.people()) == 2
