"""Celery tasks: thin wrappers, each named after the service it calls (field_mapping.services)."""

from __future__ import annotations

from celery import shared_task

from field_mapping import services


@shared_task(ignore_result=True)
def schemas_refresh_stale_task() -> int:
    return services.schemas_refresh_stale()


@shared_task(ignore_result=True)
def schemas_refresh_task() -> int:
    """The task's name until this release: a beat still running the previous release sends it."""
    return schemas_refresh_stale_task()
