from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from health.models import Heartbeat

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_and_worker(client):
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "worker": "unknown"}
    Heartbeat.objects.create(name="worker", beat_at=timezone.now())
    assert client.get("/healthz").json()["worker"] == "ok"
    Heartbeat.objects.update(beat_at=timezone.now() - timedelta(minutes=10))
    assert client.get("/healthz").json()["worker"] == "stale"
