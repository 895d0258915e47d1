"""Celery tasks: thin wrappers around alert_channels.services."""

from __future__ import annotations

from celery import shared_task

from alert_channels import services


@shared_task(ignore_result=True, acks_late=True)
def alert_delivery_send(delivery_id: int) -> None:
    """Send one alert delivery (its retries are scheduled by the service, with the row as the record)."""
    services.delivery_attempt(delivery_id)


@shared_task(ignore_result=True)
def alert_deliveries_resume() -> None:
    services.deliveries_resume()
