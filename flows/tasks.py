"""Celery tasks: thin wrappers, each named after the service it calls (flows.services)."""

from __future__ import annotations

from celery import shared_task

from flows import services


@shared_task(ignore_result=True)
def contacts_unconfirmed_purge_task() -> int:
    return services.contacts_unconfirmed_purge()
