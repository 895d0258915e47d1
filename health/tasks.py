from __future__ import annotations

import socket

from celery import shared_task
from django.utils import timezone

from health.models import Heartbeat


@shared_task
def heartbeat_task(name: str = "worker") -> str:
    """Record that a worker ran a task now (beat sends it every minute)."""
    Heartbeat.objects.update_or_create(
        name=name, defaults={"beat_at": timezone.now(), "hostname": socket.gethostname()}
    )
    return name
