"""Celery tasks: thin wrappers around sync_logs.services."""

from __future__ import annotations

from celery import shared_task

from sync_logs import services


@shared_task(ignore_result=True)
def sync_logs_purge_task() -> int:
    return services.logs_purge()
