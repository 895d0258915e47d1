"""The gauges that need the database: outbox rows waiting per state, the sync lag, active runs, integrations.

They are counts across every workspace (an operator's view; no workspace is a label), so they are not
computed per scrape: ``metrics_gauges_refresh`` (a beat task, METRICS_GAUGES_SECONDS) stores a snapshot
in the cache (Redis in production, shared by every process) and a scrape reads it. A scrape that finds
no snapshot, or one older than three periods (beat stopped), computes one itself, at most one process
at a time (a cache lock), so a stopped beat cannot turn every scrape into the counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from integrations.models import Integration, OutboxItem
from sync_logs.models import SyncRun

logger = logging.getLogger(__name__)

SNAPSHOT_KEY = "metrics:gauges"
LOCK_KEY = "metrics:gauges:lock"
WAITING = (OutboxItem.Status.PENDING, OutboxItem.Status.IN_FLIGHT, OutboxItem.Status.FAILED)


def gauges_compute() -> dict:
    """One snapshot. Each outbox count is its own query so that each reads its partial index (outbox_pending,
    outbox_in_flight, outbox_failed): a GROUP BY status would read the whole history of delivered rows."""
    now = timezone.now()
    outbox = {state: OutboxItem.objects.filter(status=state).count() for state in WAITING}
    # The lag: how long the longest-waiting due row has been due (a row waiting out its retry backoff is not late).
    oldest = OutboxItem.objects.filter(status=OutboxItem.Status.PENDING, next_attempt_at__lte=now).aggregate(
        oldest=Min("next_attempt_at")
    )["oldest"]
    runs = dict(
        SyncRun.objects.filter(status__in=SyncRun.ACTIVE).values_list("status").annotate(n=Count("id")).order_by()
    )
    integrations = dict(Integration.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {
        "at": time.time(),
        "outbox": outbox,
        "lag": (now - oldest).total_seconds() if oldest else 0.0,
        "runs": {state: runs.get(state, 0) for state in SyncRun.ACTIVE},
        "integrations": {state: integrations.get(state, 0) for state in Integration.Status.values},
    }


def metrics_gauges_refresh() -> dict:
    snapshot = gauges_compute()
    cache.set(SNAPSHOT_KEY, snapshot, timeout=settings.METRICS_GAUGES_SECONDS * 10)
    return snapshot


def gauges_snapshot() -> dict | None:
    snapshot = cache.get(SNAPSHOT_KEY)
    stale = snapshot is None or time.time() - snapshot["at"] > 3 * settings.METRICS_GAUGES_SECONDS
    if stale and cache.add(LOCK_KEY, 1, timeout=settings.METRICS_GAUGES_SECONDS):
        snapshot = metrics_gauges_refresh()
    return snapshot


class DatabaseGauges(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            snapshot = gauges_snapshot()
        except Exception:  # the database or the cache is down: the counters are still worth serving
            logger.warning("The database gauges could not be read", exc_info=True)
            snapshot = None
        if snapshot is None:  # or another process is computing the first one
            return
        outbox = GaugeMetricFamily(
            "flowsync_outbox_rows",
            "Outbox rows not done, by state (pending includes rows waiting to retry).",
            labels=["state"],
        )
        for state, count in snapshot["outbox"].items():
            outbox.add_metric([state], count)
        yield outbox
        yield GaugeMetricFamily(
            "flowsync_sync_lag_seconds",
            "How long the longest-waiting due outbox row has been due.",
            value=snapshot["lag"],
        )
        runs = GaugeMetricFamily("flowsync_sync_runs_active", "Runs queued or running.", labels=["state"])
        for state, count in snapshot["runs"].items():
            runs.add_metric([state], count)
        yield runs
        integrations = GaugeMetricFamily("flowsync_integrations", "Integrations by status.", labels=["status"])
        for state, count in snapshot["integrations"].items():
            integrations.add_metric([state], count)
        yield integrations
        yield GaugeMetricFamily(
            "flowsync_metrics_gauges_age_seconds",
            "Age of the snapshot these gauges come from (metrics_gauges_refresh).",
            value=time.time() - snapshot["at"],
        )


def gauges_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseGauges())
    return registry
