"""In headless Chromium: connect Iterable by API key through the wizard."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_connect_with_a_key_and_refuse_a_read_only_one(page: Page, live_server, log_in, alice, iterable):
    log_in(alice)
    page.get_by_role("link", name="Integrations").click()
    tile = page.locator('[data-destination="iterable"]')
    expect(tile).to_contain_text("Not connected")
    tile.get_by_role("link", name="Connect App").click()
    expect(page.get_by_text("Connect with Iterable")).to_be_disabled()

    page.get_by_label("API key").fill(iterable.keys.read_only)
    page.get_by_label("Data center").select_option("us")
    page.get_by_role("button", name="Verify and connect").click()
    expect(page.get_by_text("This is a read-only key")).to_be_visible()
    expect(page.get_by_text("create a key of type Server-side")).to_be_visible()

    page.get_by_label("API key").fill(f"  {iterable.keys.server_side}  ")
    page.get_by_role("button", name="Verify and connect").click()
    expect(page.get_by_text("Connected to Iterable")).to_be_visible()

    page.get_by_role("link", name="Integrations", exact=True).click()
    tile = page.locator('[data-destination="iterable"]')
    expect(tile).to_contain_text("Connected")
    expect(tile.get_by_test_id("masked-key")).to_have_text(f"••••{iterable.keys.server_side[-4:]}")
    assert iterable.keys.server_side not in page.content()
