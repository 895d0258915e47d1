"""In headless Chromium with a real worker: open Sync Logs from the tile, filter failed, retry one, see it delivered."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from integrations.sync import sync_now
from integrations.tasks import sync_run_slice_task
from tests.sync.test_worker_sync import _worker_env

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_filter_failed_retry_one_see_it_delivered(
    page: Page, live_server, log_in, alice, integration, capture, iterable, start_worker, settings
):
    # An outage during the first run, with no retries left: three contacts end failed, retryable.
    settings.DESTINATION_MAX_RETRIES = 0
    settings.SYNC_MAX_ATTEMPTS = 1
    capture(3, age=30)
    iterable.fault("/api/users/bulkUpdate", status=503, times=1)
    outage = sync_now(integration=integration)
    sync_run_slice_task(outage.pk)  # the task's body in this process: the run, then its alert
    outage.refresh_from_db()
    assert (outage.status, outage.failed) == ("failed", 3)
    worker = start_worker(extra_env=_worker_env(iterable))
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue

    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/integrations/")
    expect(page.get_by_test_id("alert-banner")).to_contain_text(f"Sync run #{outage.pk} failed")
    page.get_by_label("More actions").click()
    page.locator(".menu-items").get_by_role("link", name="Sync Logs").click()
    page.get_by_role("link", name=f"#{outage.pk}").click()
    page.wait_for_load_state("load")  # htmx binds the filter on DOMContentLoaded

    page.get_by_label("Status").select_option("failed")
    rows = page.locator("[data-record]")
    expect(rows).to_have_count(3)
    expect(page).to_have_url(f"{live_server.url}/w/acme/integrations/iterable/logs/runs/{outage.pk}/?status=failed")
    expect(rows.first).to_contain_text("Iterable had an error on its side.")
    rows.first.get_by_role("button", name="Retry").click()
    expect(page.get_by_text("1 failed contact(s) queued again; a sync started: run #")).to_be_visible()
    taken = page.get_by_test_id("taken-by")  # the run that took it, followed live on the same page
    expect(taken.locator(".run-progress")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(taken.get_by_test_id("delivered")).to_have_text("1")

    page.get_by_role("link", name="All runs").click()
    newest = page.locator("[data-run]").first
    newest.get_by_role("link").click()
    expect(page.locator(".run-progress")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    page.reload()
    delivered = page.locator("[data-record]")
    expect(delivered).to_have_count(1)
    expect(delivered.first).to_have_attribute("data-status", "delivered")
    assert len(iterable.users()) == 1
