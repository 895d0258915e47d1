"""In headless Chromium at a laptop's and a phone's width: Connect → Map → Frequency is one path
forward ("Save and continue"), each step checked once done, ending on a summary of the setup."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import fits
from tests.factories import make_flow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _steps(page: Page) -> dict[str, tuple[str, bool]]:
    """Each step's state on the page: (done?, current?)."""
    return page.eval_on_selector_all(
        "ol.wizard li",
        "lis => Object.fromEntries(lis.map(li => [li.dataset.step, [li.dataset.done, li.getAttribute('aria-current') === 'step']]))",
    )


def test_the_setup_goes_forward_step_by_step_to_a_summary(
    page: Page, live_server, log_in, alice, workspace_a, iterable, screen
):
    make_flow(workspace_a)
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/integrations/iterable/connect/")
    assert _steps(page) == {"connect": ["no", True], "mapping": ["no", False], "frequency": ["no", False]}
    page.get_by_label("API key").fill(iterable.keys.server_side)
    page.get_by_role("button", name="Verify and connect").click()

    expect(page.get_by_text("Next: map your form fields")).to_be_visible()
    assert _steps(page) == {"connect": ["yes", False], "mapping": ["no", True], "frequency": ["no", False]}
    fits(page, screen)
    page.wait_for_load_state("load")
    page.get_by_role("button", name="Save and continue").click()

    expect(page.get_by_role("heading", name="Sync settings")).to_be_visible()
    assert _steps(page) == {"connect": ["yes", False], "mapping": ["yes", False], "frequency": ["no", True]}
    page.get_by_label("Sync frequency").select_option("60")
    page.get_by_role("button", name="Save and continue").click()

    expect(page.get_by_role("heading", name="Iterable is set up")).to_be_visible()
    assert [done for done, _ in _steps(page).values()] == ["yes", "yes", "yes"]
    expect(page.get_by_test_id("summary-what")).to_contain_text("email")
    expect(page.get_by_test_id("summary-when")).to_contain_text("Every hour, and whenever you press Sync Now")
    expect(page.get_by_test_id("next-run")).to_contain_text("In 59")
    expect(page.get_by_role("button", name="Sync Now")).to_be_enabled()
    fits(page, screen)

    page.get_by_role("link", name="Go to Iterable").click()
    assert _steps(page) == {"connect": ["yes", False], "mapping": ["yes", False], "frequency": ["yes", False]}
