"""In headless Chromium: map fields, create a new one, watch the preview follow, save."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from field_mapping.models import FieldMapping

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_map_fields_with_live_preview(page: Page, live_server, log_in, alice, connected, flows, contact):
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/integrations/iterable/")
    page.get_by_role("link", name="Field mapping").first.click()
    expect(page).to_have_url(re.compile(r"/mapping/$"))
    page.wait_for_load_state("load")  # htmx binds its triggers on DOMContentLoaded: a change before is lost

    preview = page.get_by_test_id("preview-body")
    expect(preview).to_contain_text('"firstName": "Ada"')  # suggested: first_name -> firstName
    expect(preview).not_to_contain_text("Shoe")

    page.get_by_label("Iterable field for First name").select_option("")  # don't sync
    expect(preview).not_to_contain_text("firstName")

    page.get_by_label("Iterable field for Shoe size").select_option("__new__")
    name = page.get_by_label("New field name for Shoe size")
    expect(name).to_be_visible()
    name.fill("shoeSize")
    expect(preview).to_contain_text('"shoeSize": "M"')
    expect(preview).to_contain_text('"createNewFields": true')

    page.get_by_role("button", name="Save mapping").click()
    expect(page.get_by_text("Field mapping saved.")).to_be_visible()
    saved = {m.source_key: m.target for m in FieldMapping.objects.all()}
    assert saved["shoe_size"] == "shoeSize" and saved["first_name"] == "" and saved["email"] == "email"
    body = json.loads(page.get_by_test_id("preview-body").inner_text())
    assert body["users"][0]["dataFields"]["shoeSize"] == "M"

    # Two form fields to one Iterable field: the admin picks which wins, the preview follows.
    page.wait_for_load_state("load")
    page.get_by_label("Iterable field for First name").select_option("firstName")
    page.get_by_label("Iterable field for Company").select_option("firstName")
    winner = page.get_by_label("Which form field wins for firstName")
    expect(winner).to_be_visible()
    expect(preview).to_contain_text('"firstName": "Acme"')  # company is listed first
    winner.select_option("first_name")
    expect(preview).to_contain_text('"firstName": "Ada"')
    page.get_by_label("Use this precedence").check()
    page.get_by_role("button", name="Save mapping").click()
    expect(page.get_by_text("Field mapping saved.")).to_be_visible()
    assert [m.source_key for m in FieldMapping.objects.filter(target="firstName")] == ["first_name", "company"]

    # The next visit shows the mapping as saved, precedence confirmed, and saving again is accepted.
    page.goto(f"{live_server.url}/w/acme/integrations/iterable/mapping/")
    page.wait_for_load_state("load")
    expect(page.get_by_label("Which form field wins for firstName")).to_have_value("first_name")
    expect(page.get_by_label("Use this precedence")).to_be_checked()
    expect(page.get_by_label("New field name for Shoe size")).to_have_value("shoeSize")
    expect(page.get_by_test_id("preview-body")).to_contain_text('"firstName": "Ada"')
    page.get_by_role("button", name="Save mapping").click()
    expect(page.get_by_text("Field mapping saved.")).to_be_visible()
    expect(page.get_by_test_id("form-error")).to_have_count(0)
    assert [m.source_key for m in FieldMapping.objects.filter(target="firstName")] == ["first_name", "company"]


def test_each_row_says_what_is_wrong_with_it_and_the_preview_leaves_it_out(
    page: Page, live_server, log_in, alice, connected, flows, contact, screen
):
    from tests.browser import fits

    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/integrations/iterable/mapping/")
    page.wait_for_load_state("load")
    preview = page.get_by_test_id("preview-body")
    shoe = page.locator('tr[data-source="shoe_size"]')
    expect(preview).to_contain_text('"firstName": "Ada"')

    # "Create new field…": nothing is wrong yet, nothing is typed yet.
    page.get_by_label("Iterable field for Shoe size").select_option("__new__")
    expect(page.get_by_label("New field name for Shoe size")).to_be_visible()
    page.wait_for_timeout(700)  # past the typing pause: a preview came back
    expect(shoe.get_by_test_id("row-error")).to_have_count(0)
    # A name Iterable refuses: said under that input once typing pauses, and kept out of the preview.
    page.get_by_label("New field name for Shoe size").press_sequentially("9 lives")
    expect(shoe.get_by_test_id("row-error")).to_contain_text("is not a valid Iterable field name")
    expect(preview).not_to_contain_text("9 lives")
    expect(page.locator("#preview .error")).to_have_count(0)  # not in the preview column
    page.get_by_label("New field name for Shoe size").fill("shoeSize")
    expect(preview).to_contain_text('"shoeSize": "M"')
    expect(shoe.get_by_test_id("row-error")).to_have_count(0)

    # Text into a number field: flagged in its row before any contact fails.
    page.get_by_label("Iterable field for Company").select_option("age")
    expect(page.locator('tr[data-source="company"]').get_by_test_id("row-warning")).to_contain_text(
        "A text field into a long field"
    )
    # The dropdowns are wide enough to read "firstName (string)".
    assert page.get_by_label("Iterable field for First name").bounding_box()["width"] >= 250
    fits(page, screen)
