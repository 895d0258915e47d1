"""The engine with real Celery workers and the real broker: schedule, and a worker killed mid-run."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from integrations.models import OutboxItem
from integrations.sync import SyncNotStarted, sync_now
from integrations.tasks import integrations_enqueue_due_task
from sync_logs import ledger
from sync_logs.models import SyncRecord, SyncRun
from tests.conftest import wait_for
from tests.sync.conftest import delivered_log_rows_per_contact

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _worker_env(iterable, **extra) -> dict[str, str]:
    return {
        "ITERABLE_US_BASE_URL": f"{iterable.server.url}/us",
        "ITERABLE_EU_BASE_URL": f"{iterable.server.url}/eu",
        **{k: str(v) for k, v in extra.items()},
    }


def test_a_scheduled_run_delivers_every_contact_as_mapped(integration, capture, iterable, start_worker, settings):
    worker = start_worker(extra_env=_worker_env(iterable))
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    capture(12, age=33)
    integration.frequency = 15
    integration.next_run_at = timezone.now() - timedelta(minutes=1)
    integration.save()
    integrations_enqueue_due_task.apply_async(queue=worker.queue)  # what beat sends every minute
    run = wait_for(
        lambda: SyncRun.objects.filter(integration=integration, status="succeeded").first(),
        timeout=60,
        message="the scheduled run to succeed",
    )
    assert (run.trigger, run.total, run.delivered) == ("schedule", 12, 12)
    assert SyncRecord.objects.filter(run=run, status="delivered").count() == 12
    assert iterable.user("user7@example.com")["dataFields"] == {"firstName": "User7", "age": 33}
    integration.refresh_from_db()
    assert integration.next_run_at > timezone.now() + timedelta(minutes=14)


def _fault_pid(worker, action: str) -> int:
    """Wait until the worker's pool process has reached its planned fault (lib/faults.py); its pid."""
    line = wait_for(
        lambda: next((ln for ln in worker.log().splitlines() if f"fault injection: {action}" in ln), None),
        timeout=60,
        message=f"the worker to {action} itself",
    )
    return int(re.search(r"pid (\d+)", line).group(1))


def _process_state(pid: int) -> str:
    """R, S, T (stopped), Z (zombie), or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_a_worker_killed_inside_a_batch_write_loses_nothing(integration, capture, iterable, start_worker, settings):
    """SIGKILL between the outbox update and the log rows' COPY of the 3rd batch: that batch's outcomes
    are written all or nothing, so every contact marked delivered has its log row and its count."""
    contacts = capture(30)
    first = start_worker(
        extra_env=_worker_env(iterable, SYNC_BATCH_SIZE=4, FLOWSYNC_FAULT_INJECTION="sync.before_log_rows=kill@3")
    )
    settings.CELERY_TASK_DEFAULT_QUEUE = first.queue
    run = sync_now(integration=integration)
    pid = _fault_pid(first, "kill")
    wait_for(lambda: _process_state(pid) in ("gone", "Z"), message="the pool process to die")
    first.kill()
    run.refresh_from_db()
    assert run.status == "running" and run.delivered == 8  # two batches written, the third not at all
    delivered = set(OutboxItem.objects.filter(status="delivered").values_list("contact_id", flat=True))
    assert delivered == set(delivered_log_rows_per_contact())  # nothing delivered without its log row

    assert ledger.sync_runs_reap(timeout=timedelta(0)) == 1  # the beat's reaper, without waiting for its timeout
    run.refresh_from_db()
    assert run.status == "abandoned"
    assert not OutboxItem.objects.filter(status="in_flight").exists()

    second = start_worker(extra_env=_worker_env(iterable))
    settings.CELERY_TASK_DEFAULT_QUEUE = second.queue
    again = sync_now(integration=integration)
    wait_for(lambda: SyncRun.objects.get(pk=again.pk).status == "succeeded", timeout=60, message="the second run")
    assert OutboxItem.objects.filter(status="delivered").count() == 30
    assert len(iterable.users()) == 30  # every contact arrived (some twice: upserts make it harmless)
    # ... and each has exactly one log row saying so, counted once across the two runs.
    assert delivered_log_rows_per_contact() == {c.pk: 1 for c in contacts}
    again.refresh_from_db()
    assert run.delivered + again.delivered == 30


def test_a_worker_stalled_in_a_call_longer_than_the_timeout_keeps_its_run(
    integration, capture, iterable, start_worker, settings
):
    """Each call outlasts SYNC_RUN_TIMEOUT_SECONDS: the lease keeper moves the heartbeat meanwhile, so
    the reaper leaves the run alone and a second Sync Now starts nothing beside it."""
    settings.SYNC_RUN_TIMEOUT_SECONDS = 2  # the reaper's, in this process
    iterable.configure(latency_ms=3000)
    contacts = capture(4)
    worker = start_worker(extra_env=_worker_env(iterable, SYNC_BATCH_SIZE=2, SYNC_RUN_TIMEOUT_SECONDS=2))
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    run = sync_now(integration=integration)
    wait_for(lambda: SyncRun.objects.get(pk=run.pk).status == "running", timeout=60, message="the run to start")
    started, second_tried = SyncRun.objects.get(pk=run.pk).started_at, False
    while SyncRun.objects.get(pk=run.pk).is_active:
        assert ledger.sync_runs_reap() == 0
        # Once past the timeout (the run has three 3-second calls to make: getFields and two pushes):
        if not second_tried and timezone.now() - started > timedelta(seconds=3):
            with pytest.raises(SyncNotStarted, match="already running"):
                sync_now(integration=integration)
            second_tried = True
        time.sleep(0.2)
    assert second_tried
    run.refresh_from_db()
    assert (run.status, run.delivered) == ("succeeded", 4)
    assert delivered_log_rows_per_contact() == {c.pk: 1 for c in contacts}


def test_a_frozen_worker_that_lost_its_run_stops_and_writes_nothing(
    integration, flow, iterable, start_worker, settings
):
    """The worker freezes (SIGSTOP, as a paused VM) with an older capture claimed and not yet sent; the
    reaper closes its run; a second run delivers that capture and a newer one of the same person. Woken,
    the stale worker must not send the older values again, log anything or reopen its run."""
    from flows.services import contact_capture

    settings.SYNC_RUN_TIMEOUT_SECONDS = 2
    older = contact_capture(flow=flow, raw={"email": "pat@example.com", "first_name": "Old"})
    other = contact_capture(flow=flow, raw={"email": "quinn@example.com", "first_name": "Quinn"})
    stale = start_worker(
        extra_env=_worker_env(iterable, SYNC_RUN_TIMEOUT_SECONDS=2, FLOWSYNC_FAULT_INJECTION="sync.before_push=stop")
    )
    settings.CELERY_TASK_DEFAULT_QUEUE = stale.queue
    first = sync_now(integration=integration)
    pid = _fault_pid(stale, "stop")
    wait_for(lambda: _process_state(pid) == "T", message="the pool process to be frozen")

    wait_for(lambda: ledger.sync_runs_reap() == 1, message="the reaper to close the frozen run")
    newer = contact_capture(flow=flow, raw={"email": "pat@example.com", "first_name": "New"})
    fresh = start_worker(extra_env=_worker_env(iterable))
    settings.CELERY_TASK_DEFAULT_QUEUE = fresh.queue
    second = sync_now(integration=integration)
    wait_for(lambda: SyncRun.objects.get(pk=second.pk).status == "succeeded", timeout=60, message="the second run")
    assert iterable.user("pat@example.com")["dataFields"]["firstName"] == "New"

    stale.resume()
    wait_for(
        lambda: re.search(r"sync_run_slice_task\[[^]]+\] succeeded", stale.log()),
        timeout=60,
        message="the stale worker's task to end",
    )
    assert iterable.user("pat@example.com")["dataFields"]["firstName"] == "New"  # no older values over newer
    assert "lost its lease and stops" in stale.log()
    sent_old = [r for r in iterable.requests("/api/users/bulkUpdate") if '"Old"' in json.dumps(r["body"])]
    assert len(sent_old) == 1  # by the second run only
    first.refresh_from_db()
    assert (first.status, first.total) == ("abandoned", 0)
    assert delivered_log_rows_per_contact() == {older.pk: 1, other.pk: 1, newer.pk: 1}
    assert set(OutboxItem.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_contact_captured_during_a_run_is_delivered(integration, capture, flow, iterable, start_worker, settings):
    from flows.services import contact_capture

    iterable.configure(latency_ms=200)
    capture(8)
    worker = start_worker(extra_env=_worker_env(iterable, SYNC_BATCH_SIZE=2))
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    run = sync_now(integration=integration)
    wait_for(lambda: SyncRun.objects.get(pk=run.pk).delivered >= 2, timeout=60, message="the run to start")
    contact_capture(flow=flow, raw={"email": "late@example.com", "first_name": "Late"})
    wait_for(lambda: not SyncRun.objects.get(pk=run.pk).is_active, timeout=60, message="the run to end")
    if not OutboxItem.objects.filter(contact__email="late@example.com", status="delivered").exists():
        nxt = sync_now(integration=integration)  # not in this run: then in the next one
        wait_for(lambda: SyncRun.objects.get(pk=nxt.pk).status == "succeeded", timeout=60, message="the next run")
    assert iterable.user("late@example.com")["dataFields"]["firstName"] == "Late"


def test_pushes_stay_in_flight_while_a_slow_destination_answers(integration, capture, iterable, start_worker, settings):
    """Each bulkUpdate takes 400 ms to be answered and Iterable's pace is one every 200 ms: the run keeps
    several in flight instead of waiting on each answer, and every contact still gets one log row."""
    iterable.configure(latency_ms=400)
    contacts = capture(8)
    worker = start_worker(extra_env=_worker_env(iterable, SYNC_BATCH_SIZE=2, SYNC_PUSHES_IN_FLIGHT=4))
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    run = sync_now(integration=integration)
    wait_for(lambda: not SyncRun.objects.get(pk=run.pk).is_active, timeout=60, message="the run to end")
    run.refresh_from_db()
    assert (run.status, run.delivered) == ("succeeded", 8)
    assert iterable.stats()["most_in_flight"]["/api/users/bulkUpdate"] >= 2
    assert iterable.stats()["rate_limited"] == {}
    assert delivered_log_rows_per_contact() == {c.pk: 1 for c in contacts}


def test_one_persons_captures_are_never_in_flight_together(integration, flow, iterable, start_worker, settings):
    """Two captures of one person fall in consecutive batches while pushes are in flight: the second
    goes only once the first is answered (sent side by side, a destination may apply them in either
    order), so the newer values win."""
    from flows.services import contact_capture

    iterable.configure(latency_ms=500)
    contact_capture(flow=flow, raw={"email": "pat@example.com", "first_name": "Old"})
    contact_capture(flow=flow, raw={"email": "quinn@example.com", "first_name": "Quinn"})
    contact_capture(flow=flow, raw={"email": "pat@example.com", "first_name": "New"})
    contact_capture(flow=flow, raw={"email": "robin@example.com", "first_name": "Robin"})
    worker = start_worker(extra_env=_worker_env(iterable, SYNC_BATCH_SIZE=2, SYNC_PUSHES_IN_FLIGHT=4))
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    run = sync_now(integration=integration)
    wait_for(lambda: SyncRun.objects.get(pk=run.pk).status == "succeeded", timeout=60, message="the run")
    assert iterable.user("pat@example.com")["dataFields"]["firstName"] == "New"
    pushes = iterable.requests("/api/users/bulkUpdate")
    # "at": when the emulator took the request up, after its 500 ms wait; each answer follows at once.
    old = next(r["at"] for r in pushes if '"Old"' in json.dumps(r["body"]))
    new = next(r["at"] for r in pushes if '"New"' in json.dumps(r["body"]))
    assert new - old >= 0.45  # a whole answer's wait after the first: not side by side
