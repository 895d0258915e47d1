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


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_a_running_sync_shows_its_progress_and_gives_sync_now_back_when_done(
    page: Page, live_server, log_in, alice, integration, capture, iterable, start_worker, settings, viewport
):
    # 20 pushes of 2 contacts, paced at Iterable's 5 a second: four seconds at least, two polls or more.
    iterable.configure(latency_ms=300)
    capture(40)
    worker = start_worker(extra_env=_worker_env(iterable, SYNC_BATCH_SIZE=2))
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/integrations/iterable/")
    panel = page.get_by_test_id("sync-panel")
    expect(panel.get_by_test_id("waiting")).to_have_text("40 contacts")
    panel.get_by_role("button", name="Sync Now").click()
    expect(page.get_by_text("Sync started.")).to_be_visible()
    page.evaluate("window.notReloaded = true")  # gone if anything reloads the page

    # Each look reads the panel at once: htmx may swap it between two separate reads.
    look = """el => ({syncing: el.dataset.syncing, button: el.querySelector("button").textContent,
        disabled: el.querySelector("button").disabled,
        done: el.querySelector("[data-testid=progress-done]")?.textContent,
        expected: el.querySelector("[data-testid=progress-expected]")?.textContent,
        left: el.querySelector("[data-testid=time-left]")?.textContent})"""
    seen: set[int] = set()
    while (now := panel.evaluate(look))["syncing"] == "yes":
        assert (now["button"], now["disabled"]) == ("Syncing…", True), now
        if now["done"] is not None:
            seen.add(int(now["done"]))
            assert now["expected"] == "40" and "left" in now["left"], now
        page.wait_for_timeout(250)
    assert any(0 < n < 40 for n in seen), f"no count between the first and the last: {sorted(seen)}"

    expect(panel.get_by_role("button", name="Sync Now")).to_be_enabled()
    expect(panel.get_by_test_id("last-sync")).to_contain_text("succeeded, 40 delivered")
    expect(panel.get_by_test_id("waiting")).to_have_text("0 contacts")
    expect(panel.get_by_test_id("health")).to_have_text("Healthy")
    assert page.evaluate("window.notReloaded") is True
    assert len(iterable.users()) == 40
