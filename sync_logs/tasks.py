"""Celery tasks: thin wrappers, each named after the service it calls (sync_logs.ledger)."""

from __future__ import annotations

from celery import shared_task

from sync_logs import ledger


@shared_task(ignore_result=True)
def sync_logs_purge_task() -> int:
    return ledger.sync_logs_purge()


@shared_task(ignore_result=True)
def log_partitions_ensure_task() -> list[str]:
    return ledger.log_partitions_ensure()
