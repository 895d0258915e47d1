"""In headless Chromium at a laptop's and a phone's width: the overview and the tile say how syncing goes."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from integrations import engine
from integrations.health import alert_raise
from integrations.sync import sync_now
from tests.browser import fits

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_overview_and_the_tile_show_the_last_sync_what_waits_and_an_open_alert(
    page: Page, live_server, log_in, alice, integration, capture, screen
):
    capture(3)
    engine.sync_run_execute(sync_now(integration=integration).pk)
    capture(2)
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/")
    overview = page.get_by_test_id("overview-integration")
    expect(overview.get_by_test_id("health")).to_have_text("Healthy")
    expect(overview.get_by_test_id("last-sync")).to_contain_text("succeeded, 3 delivered")
    expect(overview.get_by_test_id("waiting")).to_have_text("2 contacts")
    expect(overview.get_by_test_id("next-run")).to_have_text("Manual only: press Sync Now")
    fits(page, screen)

    alert_raise(integration=integration, reason="Sync run #9 failed: 40% of records failed.")
    page.goto(f"{live_server.url}/w/acme/integrations/")
    tile = page.locator('[data-destination="iterable"]')
    expect(tile.get_by_test_id("health")).to_have_text("Failing records")
    expect(tile.get_by_test_id("health-reason")).to_contain_text("40% of records failed")
    fits(page, screen)


def test_the_charts_draw_the_days_and_the_runs(page: Page, live_server, log_in, alice, integration, capture, screen):
    capture(3)
    engine.sync_run_execute(sync_now(integration=integration).pk)
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/")
    for chart in ("captured-chart", "synced-chart"):
        today = page.get_by_test_id(chart).locator("g.bar").last
        expect(today).to_have_attribute("data-total", "3")
        assert today.locator("rect").bounding_box()["height"] > 100  # the tallest bar fills the chart
    fits(page, screen)
    page.goto(f"{live_server.url}/w/acme/integrations/iterable/logs/")
    bars = page.get_by_test_id("runs-chart").locator("g.bar")
    expect(bars).to_have_count(1)
    expect(bars.first.locator("title")).to_contain_text("3 delivered, 0 skipped, 0 failed")
    fits(page, screen)
