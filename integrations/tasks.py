"""Celery tasks: thin wrappers; the work is in engine.py and sync.py."""

from __future__ import annotations

from celery import shared_task

from integrations import engine, sync


@shared_task(acks_late=True, ignore_result=True)
def integration_sync_task(run_id: int) -> None:
    engine.run_sync(run_id)


@shared_task(ignore_result=True)
def integrations_enqueue_due_task() -> int:
    return len(sync.integrations_enqueue_due())


@shared_task(ignore_result=True)
def sync_runs_reap_task() -> int:
    return engine.runs_reap()
