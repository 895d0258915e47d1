from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from health.models import Heartbeat

WORKER_STALE_AFTER = timedelta(minutes=3)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for the load balancer: the database answers. Worker freshness is reported, not fatal."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any database failure means "not healthy"
        return JsonResponse({"status": "error", "database": str(exc)[:200]}, status=503)
    beat = Heartbeat.objects.filter(name="worker").first()
    worker = "unknown" if beat is None else ("ok" if timezone.now() - beat.beat_at < WORKER_STALE_AFTER else "stale")
    return JsonResponse({"status": "ok", "database": "ok", "worker": worker})
