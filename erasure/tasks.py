"""Celery tasks: thin wrappers around erasure.services."""

from __future__ import annotations

from celery import shared_task

from erasure import services


@shared_task(ignore_result=True, acks_late=True)
def erasure_step_run(step_id: int) -> None:
    """Ask one destination to delete an erased person (the service schedules its retries)."""
    services.erasure_step_attempt(step_id)


@shared_task(ignore_result=True)
def erasure_steps_resume() -> None:
    services.erasure_steps_resume()
