"""In real headless Chromium: sign up, open the link in the mail, log in and confirm the address, make a
workspace and a flow with a custom field, fill the public form, and find the contact in the list."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from flows.models import Contact

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_signup_create_flow_submit_and_see_contact(page: Page, live_server, settings):
    base = settings.SITE_URL = live_server.url  # links in mails point at the live server
    page.goto(f"{base}/accounts/signup/")
    page.get_by_label("Your name").fill("Hana")
    page.get_by_label("Work email").fill("hana@example.com")
    page.get_by_label("Password").fill("a-long-passphrase")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()

    # The live server runs in this process: its mail task sent to Django's locmem outbox.
    [message] = mail.outbox
    assert message.to == ["hana@example.com"]
    # The link asks its owner to log in, then to press the button (opening it confirms nothing).
    page.goto(re.search(rf"{re.escape(base)}/accounts/verify/\S+", message.body).group(0))
    expect(page.get_by_text("Log in to confirm your email address")).to_be_visible()
    page.get_by_label("Email").fill("hana@example.com")
    page.get_by_label("Password").fill("a-long-passphrase")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Confirm my address").click()
    expect(page.get_by_text("hana@example.com is confirmed")).to_be_visible()

    expect(page).to_have_url(re.compile(r"/new/$"))
    page.get_by_label("Workspace name").fill("Hana's Bakery")
    page.get_by_role("button", name="Create workspace").click()
    expect(page).to_have_url(re.compile(r"/w/hanas-bakery/$"))

    page.get_by_role("link", name="Flows").click()
    page.get_by_role("link", name="New flow").first.click()
    page.get_by_label("Flow name").fill("Tasting day")
    page.get_by_role("button", name="Create flow").click()
    expect(page.get_by_role("heading", name="Tasting day")).to_be_visible()

    # A custom field, added through htmx without a page reload.
    page.get_by_label("Label").fill("Favourite cake")
    page.locator("#cf-key").fill("favourite_cake")
    page.locator("#cf-type").select_option("choice")
    page.get_by_label("Options (choice fields)").fill("Cheesecake, Carrot, Lemon")
    page.locator("#fields-panel form:has(input[value=custom]) button[type=submit]").click()
    expect(page.locator('tr[data-field="favourite_cake"]')).to_be_visible()

    public_url = page.get_by_test_id("public-link").get_attribute("href")
    page.goto(public_url)
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_text("is not a valid email address")).to_be_visible()
    page.get_by_label("Email").fill("Customer@Example.com")
    page.get_by_label("Favourite cake").select_option("Lemon")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_text("Thanks!")).to_be_visible()

    page.goto(f"{base}/w/hanas-bakery/contacts/")
    row = page.get_by_role("row", name=re.compile("customer@example.com"))
    expect(row).to_contain_text("Tasting day")
    assert Contact.objects.get().data == {"email": "Customer@Example.com", "favourite_cake": "Lemon"}
