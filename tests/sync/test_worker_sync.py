"""The engine with real Celery workers and the real broker: schedule, and a worker killed mid-run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations import engine
from integrations.models import OutboxItem
from integrations.sync import sync_now
from integrations.tasks import integrations_enqueue_due_task
from sync_logs.models import SyncRecord, SyncRun
from tests.conftest import wait_for

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


def test_a_worker_killed_mid_run_loses_nothing(integration, capture, iterable, start_worker, settings):
    iterable.configure(latency_ms=250)  # every call takes a while: time to kill the worker in the middle
    capture(30)
    first = start_worker(extra_env=_worker_env(iterable, SYNC_BATCH_SIZE=4))
    settings.CELERY_TASK_DEFAULT_QUEUE = first.queue
    run = sync_now(integration=integration)
    wait_for(lambda: SyncRun.objects.get(pk=run.pk).delivered >= 4, timeout=60, message="some progress")
    first.kill()
    run.refresh_from_db()
    assert run.status == "running" and run.delivered < 30  # it died in the middle

    assert engine.runs_reap(timeout=timedelta(0)) == 1  # the beat's reaper, without waiting for its timeout
    run.refresh_from_db()
    assert run.status == "abandoned"
    assert not OutboxItem.objects.filter(status="in_flight").exists()

    iterable.configure(latency_ms=0)
    second = start_worker(extra_env=_worker_env(iterable))
    settings.CELERY_TASK_DEFAULT_QUEUE = second.queue
    again = sync_now(integration=integration)
    wait_for(lambda: SyncRun.objects.get(pk=again.pk).status == "succeeded", timeout=60, message="the second run")
    assert OutboxItem.objects.filter(status="delivered").count() == 30
    assert len(iterable.users()) == 30  # every contact arrived (some maybe twice: upserts make it harmless)


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
