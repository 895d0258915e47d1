"""In headless Chromium with a real worker: Save & Sync Now, watch the counts move, find the users in Iterable."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.sync.test_worker_sync import _worker_env

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_save_and_sync_now(
    page: Page, live_server, log_in, alice, integration, capture, iterable, start_worker, settings
):
    iterable.configure(latency_ms=150)  # slow enough to see the counts move
    capture(12, age=41)
    worker = start_worker(extra_env=_worker_env(iterable, SYNC_BATCH_SIZE=3))
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue

    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/integrations/iterable/")
    page.get_by_role("link", name="Sync settings").click()
    page.get_by_label("Sync frequency").select_option(str(60))
    page.get_by_label("Update existing people with the mapped fields").check()
    page.get_by_role("button", name="Save & Sync Now").click()

    expect(page.get_by_text("Sync started.")).to_be_visible()
    progress = page.locator(".run-progress").first
    expect(progress).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(progress.get_by_test_id("delivered")).to_have_text("12")
    assert len(iterable.users()) == 12
    assert iterable.user("user3@example.com")["dataFields"] == {"firstName": "User3", "age": 41}
