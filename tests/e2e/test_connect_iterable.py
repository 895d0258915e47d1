"""In headless Chromium: connect Iterable (API key, OAuth), re-verify a revoked key, disconnect."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import busy_seen, watch_busy
from tests.sync_logs.factories import run_with_records

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _tile(page: Page, live_server):
    page.goto(f"{live_server.url}/w/acme/integrations/")
    return page.locator('[data-destination="iterable"]')


def test_connect_with_a_key_and_refuse_a_read_only_one(page: Page, live_server, log_in, alice, iterable):
    log_in(alice)
    page.get_by_role("link", name="Integrations").click()
    tile = page.locator('[data-destination="iterable"]')
    expect(tile).to_contain_text("Not connected")
    tile.get_by_role("link", name="Connect App").click()
    expect(page.get_by_text("Connect with Iterable")).to_be_disabled()

    iterable.configure(latency_ms=300)  # the button waits, and says so
    page.get_by_label("API key").fill(iterable.keys.read_only)
    page.get_by_label("Data center").select_option("us")
    watch_busy(page)
    page.get_by_role("button", name="Verify and connect").click()
    expect(page.get_by_text("This is a read-only key")).to_be_visible()
    assert busy_seen(page) == ["Checking with Iterable…", True]
    expect(page.get_by_text("create a key of type Server-side")).to_be_visible()
    expect(page.get_by_label("API key")).to_have_value(iterable.keys.read_only)  # kept: fix it, don't paste again
    iterable.configure(latency_ms=0)

    page.get_by_label("API key").fill(f"  {iterable.keys.server_side}  ")
    page.get_by_role("button", name="Verify and connect").click()
    expect(page.get_by_text("Connected to Iterable")).to_be_visible()

    page.get_by_role("link", name="Integrations", exact=True).click()
    tile = page.locator('[data-destination="iterable"]')
    expect(tile.get_by_test_id("health")).to_have_text("Healthy")
    expect(tile.get_by_test_id("masked-key")).to_have_text(f"••••{iterable.keys.server_side[-4:]}")
    assert iterable.keys.server_side not in page.content()


def test_connect_with_oauth_through_the_authorization_server(page: Page, live_server, log_in, alice, oauth_server):
    oauth_server.register_oauth_client(live_server.url)  # the callback is on the live server's host
    log_in(alice)
    tile = _tile(page, live_server)
    tile.get_by_role("link", name="Connect App").click()
    # To the emulator's authorize endpoint (it approves at once), back to the callback, on to the mapping.
    page.get_by_role("button", name="Connect with Iterable").click()
    expect(page.get_by_text("Connected to Iterable with OAuth")).to_be_visible()

    tile = _tile(page, live_server)
    expect(tile.get_by_test_id("health")).to_have_text("Healthy")
    expect(tile).to_contain_text("OAuth grant")


def test_reverify_a_revoked_key_needs_attention(page: Page, live_server, log_in, alice, integration, iterable):
    log_in(alice)
    _tile(page, live_server).get_by_role("link", name="Manage").click()
    iterable.reset()  # every key is gone: as if the key was deleted in Iterable
    page.get_by_label("More actions").click()
    page.get_by_role("button", name="Re-verify connection").click()
    expect(page.get_by_test_id("health")).to_have_text("Needs attention")
    expect(page.get_by_test_id("attention")).to_contain_text("the key was revoked")

    tile = _tile(page, live_server)
    expect(tile.get_by_test_id("health")).to_have_text("Needs attention")
    expect(tile.get_by_test_id("health-reason")).to_contain_text("the key was revoked")


def test_disconnect_keeps_the_sync_history_reachable(page: Page, live_server, log_in, alice, integration):
    run = run_with_records(integration, 2)
    log_in(alice)
    _tile(page, live_server).get_by_role("link", name="Manage").click()
    page.once("dialog", lambda dialog: dialog.accept())  # "Disconnect Iterable? ..."
    page.get_by_label("More actions").click()
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_text("the sync history is kept")).to_be_visible()

    tile = page.locator('[data-destination="iterable"]')
    expect(tile.locator(".badge")).to_have_text("Not connected")
    tile.get_by_role("link", name="Sync Logs").click()
    page.get_by_role("link", name=f"#{run.pk}").click()
    expect(page.locator("[data-record]")).to_have_count(2)
    expect(page.get_by_text("user0001@example.com")).to_be_visible()
