"""The gauges that need the database: outbox rows waiting per state, the sync lag, active runs, integrations.

They are counts across every workspace (an operator's view; no workspace is a label), so they are not
computed per scrape: ``metrics_gauges_refresh`` (a beat task, METRICS_GAUGES_SECONDS) stores a snapshot
in the cache (Redis in production, shared by every process) and a scrape reads it. Beat stopped, a scrape
finds the snapshot ten periods old and computes one itself, at most one process every ten periods (a cache
lock); ``flowsync_metrics_gauges_age_seconds`` still counts from beat's last refresh, so that an alert on it
fires however the gauges were kept alive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta

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
    runs = dict(
        SyncRun.objects.filter(status__in=SyncRun.ACTIVE).values_list("status").annotate(n=Count("id")).order_by()
    )
    integrations = dict(Integration.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {
        "at": time.time(),
        "outbox": outbox,
        "lag": sync_lag_seconds(now),
        "runs": {state: runs.get(state, 0) for state in SyncRun.ACTIVE},
        "integrations": {state: integrations.get(state, 0) for state in Integration.Status.values},
    }


def sync_lag_seconds(now) -> float:
    """How late the latest row is against its integration's schedule: a row due at T for an integration that
    syncs every F minutes should be sent by T + F. Only integrations that sync on their own count: connected,
    not paused, on a schedule (a paused or disconnected one keeps its rows on purpose, a manual one waits for
    Sync Now). One row per integration with due rows, from outbox_pending."""
    oldest = (
        OutboxItem.objects.filter(
            status=OutboxItem.Status.PENDING,
            next_attempt_at__lte=now,
            integration__status=Integration.Status.CONNECTED,
            integration__paused_at=None,
            integration__frequency__gt=Integration.Frequency.MANUAL,
        )
        .values("integration_id", "integration__frequency")
        .annotate(oldest=Min("next_attempt_at"))
        .order_by()
    )
    late = ((now - row["oldest"] - timedelta(minutes=row["integration__frequency"])).total_seconds() for row in oldest)
    return max([0.0, *late])


def metrics_gauges_refresh(*, beat: bool = True) -> dict:
    """A fresh snapshot in the cache. ``beat``: the periodic task's (its time is the age gauge's); a scrape's own
    keeps beat's last time."""
    snapshot = gauges_compute()
    previous = cache.get(SNAPSHOT_KEY) or {}
    snapshot["beat_at"] = snapshot["at"] if beat else previous.get("beat_at")
    cache.set(SNAPSHOT_KEY, snapshot, timeout=settings.METRICS_GAUGES_SECONDS * 100)
    return snapshot


def gauges_snapshot() -> dict | None:
    snapshot = cache.get(SNAPSHOT_KEY)
    period = settings.METRICS_GAUGES_SECONDS
    stale = snapshot is None or time.time() - snapshot["at"] > 10 * period
    if stale and cache.add(LOCK_KEY, 1, timeout=10 * period):
        snapshot = metrics_gauges_refresh(beat=False)
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
            "How late the latest outbox row is against its integration's schedule (due time + frequency).",
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
        beat_at = snapshot.get("beat_at")
        yield GaugeMetricFamily(
            "flowsync_metrics_gauges_age_seconds",
            "Seconds since beat last refreshed these gauges (metrics_gauges_refresh); +Inf: never.",
            value=time.time() - beat_at if beat_at else float("inf"),
        )


def gauges_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseGauges())
    return registry
