"""A worker killed inside a batch write loses nothing, for every destination behind an emulator:
real Celery workers, the real broker, the destination over HTTP (tests/sync/test_worker_sync.py
has the rest of the worker's life against Iterable)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from integrations.models import OutboxItem
from integrations.sync import sync_now
from sync_logs import ledger
from sync_logs.models import SyncRun
from tests.conftest import wait_for
from tests.sync.conftest import delivered_log_rows_per_contact
from tests.sync.destinations import CustomerIOHarness, IterableHarness
from tests.sync.test_worker_sync import _fault_pid, _process_state

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=["iterable", "customerio"])
def harness(request):
    if request.param == "iterable":
        return IterableHarness(request.getfixturevalue("iterable"))
    return CustomerIOHarness(request.getfixturevalue("customerio"))


def test_a_worker_killed_inside_a_batch_write_loses_nothing(
    harness, workspace_a, alice, flow, capture, start_worker, settings
):
    integration = harness.connect(workspace_a, alice)
    harness.map(integration, alice)
    contacts = capture(20)
    env = harness.worker_env()
    first = start_worker(
        extra_env={**env, "SYNC_BATCH_SIZE": "4", "FLOWSYNC_FAULT_INJECTION": "sync.before_log_rows=kill@3"}
    )
    settings.CELERY_TASK_DEFAULT_QUEUE = first.queue
    run = sync_now(integration=integration)
    pid = _fault_pid(first, "kill")
    wait_for(lambda: _process_state(pid) in ("gone", "Z"), message="the pool process to die")
    first.kill()
    run.refresh_from_db()
    assert run.status == "running" and run.delivered == 8  # two batches written, the third not at all
    assert set(OutboxItem.objects.filter(status="delivered").values_list("contact_id", flat=True)) == set(
        delivered_log_rows_per_contact()
    )
    assert ledger.sync_runs_reap(timeout=timedelta(0)) == 1
    second = start_worker(extra_env=env)
    settings.CELERY_TASK_DEFAULT_QUEUE = second.queue
    again = sync_now(integration=integration)
    wait_for(lambda: SyncRun.objects.get(pk=again.pk).status == "succeeded", timeout=60, message="the second run")
    assert len(harness.people()) == 20  # every contact arrived (some twice: upserts make that harmless)
    assert delivered_log_rows_per_contact() == {c.pk: 1 for c in contacts}
