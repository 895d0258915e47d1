"""Celery tasks: thin wrappers, each named after the service it calls (engine, sync, sync_logs.ledger)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from integrations import engine, sync
from integrations.health import alerts_after_run
from sync_logs import ledger
from sync_logs.models import SyncRun


@shared_task(acks_late=True, ignore_result=True)
def sync_run_slice_task(run_id: int, slice_token: int | None = None, after_id: int = 0) -> None:
    run = engine.sync_run_slice(run_id, slice_token, after_id)
    if run is not None:
        alerts_after_run(run)


@shared_task(acks_late=True, ignore_result=True)
def sync_run_execute_task(run_id: int) -> None:
    """A run's task name of the previous release (one task for a whole run): what it queued during a
    deploy still runs, as a run's first slice."""
    sync_run_slice_task(run_id)


@shared_task(acks_late=True, ignore_result=True)
def integration_sync_task(run_id: int) -> None:
    """The task's name two releases ago, kept for the same reason."""
    sync_run_slice_task(run_id)


@shared_task(ignore_result=True)
def integrations_enqueue_due_task() -> int:
    return len(sync.integrations_enqueue_due())


@shared_task(ignore_result=True)
def sync_runs_reap_task() -> int:
    started = timezone.now()
    reaped = ledger.sync_runs_reap()
    for run in SyncRun.objects.filter(status=SyncRun.Status.ABANDONED, finished_at__gte=started):
        alerts_after_run(run)
    return reaped
