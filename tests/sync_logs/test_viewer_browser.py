"""In headless Chromium, at a laptop's and a phone's width: the run page's filter keeps a clean URL
and Back restores what was searched; Sync Now with nothing waiting says so and records no run."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from sync_logs.models import SyncRun
from tests.browser import fits
from tests.sync_logs.factories import run_with_records

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_filter_keeps_one_clean_url_and_back_restores_the_search(
    page: Page, live_server, log_in, alice, integration, screen
):
    run = run_with_records(integration, 30, failed_every=3)  # user0000, 0003, … failed
    url = f"{live_server.url}/w/acme/integrations/iterable/logs/runs/{run.pk}/"
    log_in(alice)
    page.goto(url)
    page.wait_for_load_state("load")  # htmx binds the filter on DOMContentLoaded
    rows, search, status = page.locator("[data-record]"), page.get_by_label("Email or ID"), page.get_by_label("Status")
    fits(page, screen)

    status.select_option("failed")
    expect(page).to_have_url(url + "?status=failed")
    expect(rows).to_have_count(10)
    search.fill("user001")  # the failed ones of 0010-0019: 0012, 0015, 0018
    expect(page).to_have_url(url + "?status=failed&q=user001")
    expect(rows).to_have_count(3)
    status.select_option("")
    expect(page).to_have_url(url + "?q=user001")  # each change replaces the query, none is appended
    expect(rows).to_have_count(10)

    page.go_back()
    expect(page).to_have_url(url + "?status=failed&q=user001")
    expect(rows).to_have_count(3)
    expect(search).to_have_value("user001")
    expect(status).to_have_value("failed")
    page.go_back()
    expect(page).to_have_url(url + "?status=failed")
    expect(rows).to_have_count(10)
    expect(search).to_have_value("")
    page.go_forward()
    expect(search).to_have_value("user001")


def test_sync_now_with_nothing_waiting_says_so_and_records_no_run(
    page: Page, live_server, log_in, alice, integration, screen
):
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/integrations/iterable/")
    page.get_by_role("button", name="Sync Now").first.click()
    expect(page.get_by_text("Nothing to sync: all contacts are up to date.")).to_be_visible()
    fits(page, screen)
    assert not SyncRun.objects.exists()
