"""In headless Chromium: a run's requests to Iterable on its page, filtered to the failed ones, one opened."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from integrations import engine
from integrations.sync import sync_now
from sync_logs.models import SyncExchange

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_filter_the_failed_requests_and_open_one(
    page: Page, live_server, log_in, alice, integration, capture, iterable
):
    capture(2)
    iterable.fault("/api/users/bulkUpdate", status=503, body={"code": "GenericError", "msg": "Iterable is down"})
    run = engine.sync_run_execute(sync_now(integration=integration).pk)  # the outage, then its retry delivers
    refused = SyncExchange.objects.filter(run=run, status=503).get()

    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/integrations/iterable/logs/runs/{run.pk}/")
    page.wait_for_load_state("load")  # htmx binds the links on DOMContentLoaded
    requests = page.locator("#requests [data-exchange]")
    expect(page.get_by_role("heading", name="Requests to Iterable")).to_be_visible()
    expect(requests).to_have_count(SyncExchange.objects.filter(run=run).count())

    page.get_by_test_id("requests-failed").click()
    expect(requests).to_have_count(1)
    expect(requests.first).to_have_attribute("data-exchange", str(refused.pk))
    expect(page).to_have_url(f"{live_server.url}/w/acme/integrations/iterable/logs/runs/{run.pk}/?requests=failed")
    expect(page.get_by_test_id("requests-failed")).to_have_attribute("aria-current", "true")

    requests.first.get_by_role("link").click()
    expect(page.get_by_test_id("exchange-status")).to_have_text("503")
    expect(page.get_by_test_id("request-body")).to_contain_text('"email": "user0@example.com"')
    expect(page.get_by_test_id("response-body")).to_contain_text("Iterable is down")
    page.go_back()
    expect(requests).to_have_count(1)  # the filter, as the URL says
