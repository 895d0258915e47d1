"""/metrics: only for a scraper with the token, and its database gauges from a snapshot, not from a count per scrape."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from metrics.gauges import LOCK_KEY, SNAPSHOT_KEY

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-0123456789"


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    cache.delete_many([SNAPSHOT_KEY, LOCK_KEY])
    yield TOKEN
    cache.delete_many([SNAPSHOT_KEY, LOCK_KEY])


@pytest.fixture
def connected(workspace_a, alice, iterable):
    """Workspace A connected to the Iterable emulator, and a flow of its own: (flow, integration)."""
    from integrations.services import integration_connect
    from tests.factories import make_flow

    integration = integration_connect(
        workspace=workspace_a,
        actor=alice,
        kind="iterable",
        data={"api_key": iterable.keys.server_side, "region": "us", "project_type": "hybrid"},
    )
    return make_flow(workspace_a, name="Gauges"), integration


def _gauges(content: bytes) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(content.decode())
        for s in family.samples
    }


def test_no_token_set_is_no_page(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_a_wrong_or_missing_token_is_refused(client, token):
    for header in (
        {},
        {"HTTP_AUTHORIZATION": "Bearer nope"},
        {"HTTP_AUTHORIZATION": f"Basic {token}"},
        {"HTTP_AUTHORIZATION": token},  # no scheme
    ):
        answer = client.get("/metrics", **header)
        assert answer.status_code == 401
        assert answer["WWW-Authenticate"].startswith("Bearer")
        assert b"flowsync_" not in answer.content
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 405
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"bearer {token}").status_code == 200  # the scheme is case-blind


def test_the_gauges_count_the_outbox_and_a_scrape_reads_the_snapshot(client, token, connected):
    from flows.services import contact_capture
    from integrations.models import OutboxItem

    flow, _ = connected

    for i in range(3):
        contact_capture(flow=flow, raw={"email": f"g{i}@example.com"}, source="api")
    OutboxItem.objects.filter(contact__email="g2@example.com").update(status=OutboxItem.Status.FAILED)

    first = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")  # no snapshot yet: this scrape makes it
    gauges = _gauges(first.content)
    assert gauges[("flowsync_outbox_rows", (("state", "pending"),))] == 2
    assert gauges[("flowsync_outbox_rows", (("state", "failed"),))] == 1
    assert gauges[("flowsync_outbox_rows", (("state", "in_flight"),))] == 0
    assert gauges[("flowsync_sync_lag_seconds", ())] >= 0
    assert gauges[("flowsync_integrations", (("status", "connected"),))] == 1

    with CaptureQueriesContext(connection) as queries:
        again = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert again.status_code == 200
    assert not [q for q in queries.captured_queries if "outbox" in q["sql"]]  # read from the snapshot


def test_a_stale_snapshot_is_computed_by_one_scrape_only_and_its_age_is_beats(client, token, settings):
    import time

    old = time.time() - 20 * settings.METRICS_GAUGES_SECONDS
    cache.set(SNAPSHOT_KEY, {"at": old, "beat_at": old, "outbox": {}, "lag": 0.0, "runs": {}, "integrations": {}})
    cache.add(LOCK_KEY, 1)  # another process is computing it now
    with CaptureQueriesContext(connection) as queries:
        answer = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 200
    assert not [q for q in queries.captured_queries if "outbox" in q["sql"]]
    cache.delete(LOCK_KEY)
    again = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert time.time() - cache.get(SNAPSHOT_KEY)["at"] < 5  # the lock free: recomputed by this scrape
    # ...but the age still counts from beat's last refresh: an alert on it fires while beat is stopped.
    assert _gauges(again.content)[("flowsync_metrics_gauges_age_seconds", ())] > 10 * settings.METRICS_GAUGES_SECONDS


def test_the_lag_counts_against_each_integrations_schedule_and_only_those_that_sync_on_their_own(token, connected):
    from datetime import timedelta

    from django.utils import timezone

    from flows.services import contact_capture
    from integrations.models import Integration, OutboxItem
    from metrics.gauges import metrics_gauges_refresh

    flow, integration = connected
    contact_capture(flow=flow, raw={"email": "late@example.com"}, source="api")
    OutboxItem.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=100))
    assert metrics_gauges_refresh()["lag"] == 0  # manual only: it waits for Sync Now by design
    Integration.objects.filter(pk=integration.pk).update(frequency=Integration.Frequency.HOURLY)
    assert 39 * 60 < metrics_gauges_refresh()["lag"] < 41 * 60  # due 100 min ago, every 60 min: 40 min late
    Integration.objects.filter(pk=integration.pk).update(paused_at=timezone.now())
    assert metrics_gauges_refresh()["lag"] == 0  # paused: its rows wait on purpose


def test_the_beat_task_refreshes_the_snapshot(token):
    from metrics.tasks import metrics_gauges_refresh

    metrics_gauges_refresh()
    assert cache.get(SNAPSHOT_KEY)["outbox"] == {"pending": 0, "in_flight": 0, "failed": 0}
