"""Celery tasks: thin wrappers, each named after the service it calls."""

from __future__ import annotations

from celery import shared_task

from metrics import gauges


@shared_task(ignore_result=True)
def metrics_gauges_refresh() -> None:
    gauges.metrics_gauges_refresh()
