from __future__ import annotations

from django.db import models


class Heartbeat(models.Model):
    """When each periodic heartbeat last ran: proof that beat and a worker are alive."""

    name = models.CharField(max_length=60, unique=True)
    beat_at = models.DateTimeField()
    hostname = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.beat_at:%Y-%m-%d %H:%M:%S}"
