"""An integration's sync health at a glance: one state that is green only when all is well, the
last sync, what waits, the next run; and a run's progress ("x of N", the time left)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations import engine, selectors
from integrations.health import alert_raise
from integrations.models import Integration, OutboxItem
from integrations.status import integration_mark_needs_attention
from integrations.sync import integration_pause, sync_now
from sync_logs import ledger
from sync_logs.models import SyncRun

pytestmark = pytest.mark.django_db


def _health(integration) -> selectors.SyncHealth:
    return selectors.integration_health(integration=Integration.objects.get(pk=integration.pk))


def test_a_clean_sync_is_healthy_with_its_counts_and_nothing_waiting(integration, capture):
    capture(3)
    before = _health(integration)
    assert (before.state, str(before.waiting), before.last_run) == ("healthy", "3", None)
    assert before.next_run == "Manual only: press Sync Now"
    run = engine.sync_run_execute(sync_now(integration=integration).pk)
    after = _health(integration)
    assert (after.state, after.tone, after.label) == ("healthy", "ok", "Healthy")
    assert after.last_run.pk == run.pk and after.last_run.delivered == 3
    assert (after.waiting.value, after.failed.value, after.active_run) == (0, 0, None)


@pytest.mark.parametrize(
    ("make_it", "state", "tone"),
    [
        (
            lambda i, alice: alert_raise(integration=i, reason="Sync run #9 failed: 40% of records failed."),
            "failing",
            "bad",
        ),
        (lambda i, alice: integration_pause(integration=i, actor=alice), "paused", "warn"),
        (
            lambda i, alice: integration_mark_needs_attention(
                integration=i, code="auth", message="The key was refused."
            ),
            "needs_attention",
            "bad",
        ),
        (lambda i, alice: OutboxItem.objects.update(status="failed", error_code="x"), "failing", "warn"),
        (lambda i, alice: OutboxItem.objects.update(attempts=1), "failing", "warn"),
    ],
    ids=["alert-open", "paused", "needs-attention", "failed-contacts", "retrying-contacts"],
)
def test_never_green_while_something_is_wrong(integration, capture, alice, make_it, state, tone):
    capture(2)
    make_it(integration, alice)
    health = _health(integration)
    assert (health.state, health.tone) == (state, tone)
    assert health.tone != "ok" and health.reason


def test_paused_wins_over_an_open_alert_and_neither_is_green(integration, alice):
    alert_raise(integration=integration, reason="Sync run #9 failed.")
    integration_pause(integration=integration, actor=alice)
    health = _health(integration)
    assert (health.state, health.next_run) == ("paused", "Paused")


def test_counts_are_capped_so_a_huge_backlog_costs_a_bounded_read(integration, capture, monkeypatch):
    monkeypatch.setattr(selectors, "COUNT_CAP", 3)
    capture(5)
    waiting = _health(integration).waiting
    assert (waiting.value, waiting.capped, str(waiting)) == (3, True, "3+")


def test_the_next_scheduled_run_in_words(integration):
    Integration.objects.filter(pk=integration.pk).update(
        frequency=60, next_run_at=timezone.now() + timedelta(minutes=42)
    )
    assert _health(integration).next_run == "In 41\xa0minutes (every hour)"
    Integration.objects.filter(pk=integration.pk).update(next_run_at=timezone.now() - timedelta(seconds=5))
    assert _health(integration).next_run == "Within a minute"


def test_a_run_counts_what_it_plans_at_start_and_estimates_the_rest(integration, capture):
    capture(4)
    run = ledger.run_start(sync_now(integration=integration).pk)
    assert run.planned == 4
    assert (run.progress.done, run.progress.expected, run.progress.percent) == (0, 4, 0)
    assert run.progress.time_left == "estimating the time left"
    SyncRun.objects.filter(pk=run.pk).update(total=1, started_at=timezone.now() - timedelta(seconds=30))
    run.refresh_from_db()
    assert (run.progress.percent, run.progress.time_left) == (25, "about 2 min left")  # 90 s
    SyncRun.objects.filter(pk=run.pk).update(total=6)  # captures made during the run joined it
    run.refresh_from_db()
    assert (run.progress.done, run.progress.expected, run.progress.percent) == (6, 6, 100)
    assert _health(integration).active_run.pk == run.pk


def test_the_tile_the_page_and_the_overview_show_the_health_not_a_green_connected(integration, alice_client):
    alert_raise(integration=integration, reason="Sync run #9 failed: 40% of records failed.")
    for url in ("/w/acme/integrations/", "/w/acme/integrations/iterable/", "/w/acme/"):
        page = alice_client.get(url).content.decode()
        assert "Failing records" in page and "40% of records failed" in page, url
        assert "badge ok" not in page, url


def test_the_panel_polls_only_while_a_sync_runs(integration, capture, alice_client):
    url = "/w/acme/integrations/iterable/sync-panel/"
    assert "hx-trigger" not in alice_client.get(url).content.decode()
    capture(1)
    run = sync_now(integration=integration)
    running = alice_client.get(url).content.decode()
    assert 'hx-trigger="every 2s"' in running and "Syncing…" in running and "disabled" in running
    engine.sync_run_execute(run.pk)
    done = alice_client.get(url).content.decode()
    assert "hx-trigger" not in done and "Sync Now" in done and "disabled" not in done


def test_the_logs_chart_the_last_runs_and_the_overview_charts_the_days(integration, capture, alice_client):
    capture(3)
    engine.sync_run_execute(sync_now(integration=integration).pk)
    logs = alice_client.get("/w/acme/integrations/iterable/logs/").content.decode()
    assert 'data-testid="runs-chart"' in logs and 'class="delivered"' in logs and 'data-total="3"' in logs
    overview = alice_client.get("/w/acme/").content.decode()
    assert 'data-testid="captured-chart"' in overview and 'data-testid="synced-chart"' in overview
    assert overview.count('data-total="3"') == 2  # today: 3 captured, 3 synced
    assert "<script" not in logs.split("</head>")[1]  # drawn on the server, no chart script
