from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from health.models import Heartbeat

WORKER_STALE_AFTER = timedelta(minutes=3)
logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for the load balancer: the database answers. Worker freshness is reported, not fatal."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any database failure means "not healthy"
        # The answer is public: an error's text names hosts, ports, users and paths. The log keeps it.
        logger.exception("healthz: the database check failed")
        return JsonResponse({"status": "error", "database": "error"}, status=503)
    beat = Heartbeat.objects.filter(name="worker").first()
    worker = "unknown" if beat is None else ("ok" if timezone.now() - beat.beat_at < WORKER_STALE_AFTER else "stale")
    return JsonResponse({"status": "ok", "database": "ok", "worker": worker})
