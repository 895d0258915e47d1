"""Time-sliced runs: a run is carried by a chain of short tasks, with real Celery workers and the real broker.

Each slice works for at most SYNC_SLICE_BATCHES batches (or SYNC_SLICE_SECONDS), then queues the next
behind the other work waiting for a worker; a long wait for the rate budget gives the slot back. The
run's guarantees hold across slices: one task holds the run at a time (its slice token fences every
write), nothing is lost when a worker dies between two slices.
"""

from __future__ import annotations

import re
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from field_mapping.services import RowChoice, mapping_save
from flows.services import contact_capture
from integrations import engine
from integrations.lease import LeaseLost, lease_renew
from integrations.models import OutboxItem
from integrations.services import integration_connect
from integrations.sync import sync_now
from sync_logs import ledger
from sync_logs.models import SyncRun
from tests.conftest import free_port, wait_for
from tests.factories import make_flow
from tests.sync.conftest import delivered_log_rows_per_contact
from tests.sync.test_worker_sync import _fault_pid, _process_state, _worker_env

SLICE_LOG = re.compile(r"sync_run_slice_task\[[^]]+\] succeeded")


def _slices_env(iterable, **extra):
    """A worker whose slices are one batch of two contacts: every run of more than two is several slices."""
    return _worker_env(iterable, SYNC_BATCH_SIZE=2, SYNC_SLICE_BATCHES=1, SYNC_SLICE_SECONDS=30, **extra)


def _pushes(iterable) -> list[dict]:
    """The bulkUpdates that carried users (the connect check sends an empty one)."""
    return [r for r in iterable.requests("/api/users/bulkUpdate") if (r["body"] or {}).get("users")]


@pytest.fixture
def other_workspace(iterable, workspace_b, charlie):
    """Workspace B, connected (an integration and a rate budget of its own), mapped, with a flow."""
    flow = make_flow(workspace_b, name="Kiosk")
    integration = integration_connect(
        workspace=workspace_b,
        actor=charlie,
        kind="iterable",
        data={"api_key": iterable.keys.server_side, "region": "us", "project_type": "hybrid"},
    )
    mapping_save(
        integration=integration,
        actor=charlie,
        choices=[RowChoice("email", "email"), RowChoice("first_name", "firstName")],
    )
    return flow, integration


def _kiosk_contacts(flow, count: int) -> list:
    return [
        contact_capture(flow=flow, raw={"email": f"kiosk{i}@example.com", "first_name": "Kiosk"}) for i in range(count)
    ]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_two_runs_on_one_slot_take_turns_and_every_contact_arrives_once(
    integration, capture, other_workspace, iterable, start_worker, settings
):
    """One worker slot, two workspaces' runs of six batches each: each slice hands its run on behind the other's,
    so both go in slices, side by side, and each contact arrives once."""
    iterable.configure(latency_ms=50)
    contacts = capture(12)
    flow, other = other_workspace
    contacts += _kiosk_contacts(flow, 12)
    worker = start_worker(extra_env=_slices_env(iterable))
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    runs = [sync_now(integration=integration), sync_now(integration=other)]
    for run in runs:
        wait_for(lambda run=run: SyncRun.objects.get(pk=run.pk).status == "succeeded", timeout=60, message="the runs")
        run.refresh_from_db()
        assert (run.total, run.delivered) == (12, 12)
        assert run.slice_token > 2  # handed on, not run in one go
    assert len(SLICE_LOG.findall(worker.log())) > 6
    assert len(_pushes(iterable)) == 12
    assert delivered_log_rows_per_contact() == {c.pk: 1 for c in contacts}
    assert set(OutboxItem.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_run_alone_keeps_its_slot_past_its_slice(integration, capture, iterable, start_worker, settings):
    """Nothing else waits for a worker: handing the run on would only cost it its pipeline, so its slice goes on."""
    capture(12)
    worker = start_worker(extra_env=_slices_env(iterable))
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    run = sync_now(integration=integration)
    wait_for(lambda: SyncRun.objects.get(pk=run.pk).status == "succeeded", timeout=60, message="the run")
    run.refresh_from_db()
    assert (run.delivered, run.slice_token) == (12, 1)
    assert len(_pushes(iterable)) == 6


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_small_workspace_syncs_between_the_slices_of_a_big_one(
    integration, capture, other_workspace, iterable, start_worker, settings
):
    """One worker slot. Workspace A's backlog takes many slices; workspace B presses Sync Now once A is
    under way, and its run is done while A's still has contacts to send: B waited one slice, not A's backlog."""
    iterable.configure(latency_ms=100)
    capture(40)
    worker = start_worker(extra_env=_slices_env(iterable), concurrency=1)
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    big = sync_now(integration=integration)
    wait_for(lambda: SyncRun.objects.get(pk=big.pk).delivered >= 2, timeout=60, message="the big run to start")
    flow, small_integration = other_workspace
    _kiosk_contacts(flow, 2)
    small = sync_now(integration=small_integration)
    wait_for(lambda: SyncRun.objects.get(pk=small.pk).status == "succeeded", timeout=60, message="the small run")
    big.refresh_from_db()
    assert big.is_active and big.delivered < 40
    wait_for(lambda: SyncRun.objects.get(pk=big.pk).status == "succeeded", timeout=90, message="the big run")
    assert SyncRun.objects.get(pk=big.pk).delivered == 40


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_between_two_slices_loses_nothing(
    integration, capture, other_workspace, iterable, start_worker, settings
):
    """Two runs take turns on one slot. SIGKILL after a slice handed its run on and before the next task was
    queued: that run waits for a task that never comes. The reaper closes both; nothing was in flight
    (a run between slices holds no row); the next runs send the rest, each contact once."""
    contacts = capture(8)
    flow, other = other_workspace
    contacts += _kiosk_contacts(flow, 8)
    first = start_worker(extra_env=_slices_env(iterable, FLOWSYNC_FAULT_INJECTION="sync.after_hand_off=kill@3"))
    settings.CELERY_TASK_DEFAULT_QUEUE = first.queue
    runs = [sync_now(integration=integration), sync_now(integration=other)]
    pid = _fault_pid(first, "kill")
    wait_for(lambda: _process_state(pid) in ("gone", "Z"), message="the pool process to die")
    first.kill()
    assert not OutboxItem.objects.filter(status="in_flight").exists()
    assert {SyncRun.objects.get(pk=run.pk).status for run in runs} == {"running"}

    assert ledger.sync_runs_reap(timeout=timedelta(0)) == 2
    second = start_worker(extra_env=_worker_env(iterable))
    settings.CELERY_TASK_DEFAULT_QUEUE = second.queue
    again = [sync_now(integration=integration), sync_now(integration=other)]
    for run in again:
        wait_for(lambda run=run: SyncRun.objects.get(pk=run.pk).status == "succeeded", timeout=60, message="a run")
    assert delivered_log_rows_per_contact() == {c.pk: 1 for c in contacts}
    assert len(iterable.users()) == 16


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_long_wait_for_the_rate_budget_gives_the_worker_slot_back(
    integration, capture, other_workspace, iterable, start_worker, settings, tmp_path
):
    """Workspace A's first push is answered 429 with Retry-After: 4. Instead of sleeping 4 s in the only
    worker slot, A's run hands the slot back with its next slice queued for after the wait; workspace B's
    run, pressed meanwhile, is done before A's resumes. Nothing of A's is counted as a failed attempt."""
    capture(4)
    iterable.fault("/api/users/bulkUpdate", status=429, headers={"Retry-After": "4"})
    port = free_port()
    metrics_env = {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "METRICS_PORT": port,
        "METRICS_ADDR": "127.0.0.1",
    }
    worker = start_worker(extra_env=_slices_env(iterable, SYNC_SLICE_YIELD_SECONDS=1, **metrics_env), concurrency=1)
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    waiting = sync_now(integration=integration)
    wait_for(  # handed on, its heartbeat dated when the budget has room again
        lambda: (
            (SyncRun.objects.get(pk=waiting.pk).heartbeat_at or timezone.now()) > timezone.now() + timedelta(seconds=2)
        ),
        message="the run to give its slot back",
    )
    flow, small_integration = other_workspace
    _kiosk_contacts(flow, 1)
    small = sync_now(integration=small_integration)
    wait_for(lambda: SyncRun.objects.get(pk=small.pk).status == "succeeded", timeout=30, message="the other run")
    waiting.refresh_from_db()
    assert waiting.is_active and waiting.delivered == 0
    assert waiting.heartbeat_at > SyncRun.objects.get(pk=small.pk).finished_at  # dated when its budget has room
    wait_for(lambda: SyncRun.objects.get(pk=waiting.pk).status == "succeeded", timeout=30, message="the run")
    assert SyncRun.objects.get(pk=waiting.pk).delivered == 4
    assert set(OutboxItem.objects.filter(integration=integration).values_list("attempts", flat=True)) == {1}
    # The wait outside the worker is counted: the metrics a dashboard reads the budget's pressure from.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        samples = {
            (s.name, s.labels.get("destination")): s.value
            for family in text_string_to_metric_families(answer.read().decode())
            for s in family.samples
        }
    assert samples[("flowsync_sync_budget_handbacks_total", "iterable")] >= 1
    assert samples[("flowsync_sync_budget_handback_wait_seconds_total", "iterable")] >= 3


@pytest.mark.django_db
def test_a_slice_task_delivered_twice_takes_the_run_once(integration, capture):
    """Two copies of one slice's message (a broker redelivery): the first takes the run and moves its token
    on, the second finds the token moved and does nothing; writes fenced on the old token fail."""
    capture(2)
    run = ledger.run_create(integration=integration, trigger=SyncRun.Trigger.MANUAL)
    started = ledger.run_start(run.pk)
    assert started.slice_token == 1
    assert ledger.run_hand_off(started, resume_in=0)
    taken = ledger.run_resume(run.pk, 1)
    assert taken is not None and taken.slice_token == 2
    assert ledger.run_resume(run.pk, 1) is None
    assert engine.sync_run_slice(run.pk, 1) is None  # the copy: nothing claimed, nothing sent
    assert not OutboxItem.objects.exclude(status="pending").exists()
    assert not lease_renew(run.pk, 1) and lease_renew(run.pk, 2)
    with pytest.raises(LeaseLost):
        ledger.run_finish(started)  # the first slice, holding token 1, may not close it
    assert ledger.run_finish(taken).status == "succeeded"
