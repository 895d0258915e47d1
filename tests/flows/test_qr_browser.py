"""In headless Chromium, at a desktop and a phone viewport: a flow's page shows its QR code, copies
its link and downloads the code; the printable page prints the code, the name and the call to action."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import fits
from tests.factories import make_flow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def loaded(image) -> bool:
    return image.evaluate("img => img.complete && img.naturalWidth > 0")


def test_a_flow_shows_its_code_copies_its_link_and_downloads_it(
    page: Page, live_server, log_in, alice, workspace_a, settings, screen
):
    settings.SITE_URL = live_server.url
    flow = make_flow(workspace_a, name="In-store QR code")
    width = screen
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/flows/{flow.pk}/")

    code = page.get_by_test_id("flow-qr")
    expect(code).to_be_visible()
    assert loaded(code)
    fits(page, width)

    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("button", name="Link copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == f"{live_server.url}/f/{flow.public_id}/"
    expect(page.get_by_role("button", name="Copy link")).to_be_visible(timeout=4000)  # back after 2 s

    with page.expect_download() as png:
        page.get_by_role("link", name="PNG").nth(2).click()
    assert png.value.suggested_filename == "in-store-qr-code-qr-10cm.png"
    assert png.value.path().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as svg:
        page.get_by_role("link", name="SVG").first.click()
    assert svg.value.suggested_filename == "in-store-qr-code-qr-3cm.svg"


def test_the_printable_page_prints_the_code_the_name_and_a_reworded_call_to_action(
    page: Page, live_server, log_in, alice, workspace_a, screen
):
    flow = make_flow(workspace_a, name="In-store QR code")
    width = screen
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/flows/{flow.pk}/")
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Printable page").click()
    sheet_page = opened.value
    sheet_page.set_viewport_size(page.viewport_size)
    sheet_page.wait_for_load_state()
    sheet = sheet_page.get_by_test_id("print-sheet")
    expect(sheet).to_contain_text("In-store QR code")
    expect(sheet_page.get_by_test_id("cta")).to_have_text("Scan with your phone's camera to sign up")

    sheet_page.get_by_label("Call to action").fill("Scan for 10% off your first coffee")
    sheet_page.get_by_role("button", name="Update").click()
    expect(sheet_page.get_by_test_id("cta")).to_have_text("Scan for 10% off your first coffee")
    image = sheet.get_by_role("img")
    assert loaded(image)
    fits(sheet_page, width)

    # On paper: the controls are gone, the code keeps its 10 cm (or the page's width on a phone).
    sheet_page.emulate_media(media="print")
    expect(sheet_page.get_by_role("button", name="Print")).to_be_hidden()
    box = image.bounding_box()
    assert box["width"] == pytest.approx(box["height"], abs=1)
    if width > 600:
        assert box["width"] == pytest.approx(100 / 25.4 * 96, abs=2)  # 10 cm at CSS's 96 px to the inch
    else:
        assert 0.75 * width < box["width"] <= width
