"""In headless Chromium: an admin adds a consent box with their own wording; a visitor leaves it unticked, another
ticks it on a double opt-in flow, gets the mail, opens the link and confirms; the contact page shows each answer
with the words it was given to and the confirmation."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from flows.models import Contact
from integrations.models import Integration, OutboxItem
from tests.factories import make_flow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WORDING = "Yes, send me the Acme newsletter. I can unsubscribe at any time."


def test_consent_ticked_unticked_and_confirmed_by_double_opt_in(page: Page, live_server, log_in, alice, workspace_a,
                                                                settings):  # fmt: skip
    settings.SITE_URL = live_server.url
    Integration.objects.create(workspace=workspace_a, kind="iterable", status=Integration.Status.CONNECTED)
    flow = make_flow(workspace_a, name="Launch")
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/flows/{flow.pk}/")
    page.get_by_label("Label").fill("Newsletter")
    page.locator("#cf-key").fill("newsletter")
    page.locator("#cf-type").select_option("consent")
    page.get_by_label("Checkbox wording (consent fields)").fill(WORDING)
    page.locator("#fields-panel form:has(input[value=custom]) button[type=submit]").click()
    expect(page.locator('tr[data-field="newsletter"]')).to_contain_text("Consent checkbox")

    # Unticked: kept as a "no", with the wording the visitor saw; synced like any contact.
    visitor = page.context.browser.new_page()
    visitor.goto(f"{live_server.url}/f/{flow.public_id}/")
    expect(visitor.get_by_label(WORDING)).not_to_be_checked()
    visitor.get_by_label("Email").fill("bob@example.com")
    visitor.get_by_role("button", name="Submit").click()
    expect(visitor.get_by_text("Thanks!")).to_be_visible()
    bob = Contact.objects.get(email="bob@example.com")
    assert bob.consents["newsletter"]["given"] is False and bob.consents["newsletter"]["wording"] == WORDING
    assert OutboxItem.objects.filter(contact=bob).exists()

    # Double opt-in on: a ticked box, then the mail, the link and the button.
    page.get_by_label("Ask new contacts to confirm their email address (double opt-in)").check()
    page.get_by_role("button", name="Save flow").click()
    expect(page.get_by_text("Flow saved.")).to_be_visible()
    visitor.goto(f"{live_server.url}/f/{flow.public_id}/")
    visitor.get_by_label("Email").fill("ada@example.com")
    visitor.get_by_label(WORDING).check()
    visitor.get_by_role("button", name="Submit").click()
    expect(visitor.get_by_role("status")).to_contain_text("we have sent you an email")
    ada = Contact.objects.get(email="ada@example.com")
    assert ada.awaiting_confirmation and not OutboxItem.objects.filter(contact=ada).exists()

    (message,) = mail.outbox
    (link,) = re.findall(r"https?://\S+/c/\S+/", message.body)
    visitor.goto(link)
    expect(visitor.get_by_text("ada@example.com")).to_be_visible()
    visitor.get_by_role("button", name="Confirm my email address").click()
    expect(visitor.get_by_role("heading", name="Thanks, your email address is confirmed")).to_be_visible()
    assert OutboxItem.objects.filter(contact=ada).count() == 1
    visitor.goto(link)  # single use: a second visit only says so
    expect(visitor.get_by_role("heading", name="Your email address is already confirmed")).to_be_visible()

    page.goto(f"{live_server.url}/w/acme/contacts/{ada.pk}/")
    expect(page.get_by_test_id("confirmation")).to_contain_text("Email confirmed")
    consent = page.get_by_test_id("consents")
    expect(consent).to_contain_text("Agreed")
    expect(consent).to_contain_text(WORDING)
