"""Celery tasks: thin wrappers around field_mapping.services."""

from __future__ import annotations

from celery import shared_task

from field_mapping import services


@shared_task(ignore_result=True)
def schemas_refresh_task() -> int:
    return services.schemas_refresh_stale()
