"""In headless Chromium: add a Slack channel and a signed webhook, send each a test, see it delivered, remove one."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from alert_channels import services
from alert_channels.tasks import alert_delivery_send

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sent_in_process(monkeypatch):
    """Deliveries are sent by the live server's own thread as soon as they are queued (no worker here)."""
    monkeypatch.setattr(
        alert_delivery_send,
        "apply_async",
        lambda args=None, kwargs=None, countdown=0, **kw: services.delivery_attempt(args[0]),
    )


def test_add_test_and_remove_channels(page: Page, live_server, log_in, alice, receiver, loopback, sent_in_process):
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/settings/")
    page.get_by_role("link", name="Alerts").click()
    expect(page.get_by_text("No channel yet: alerts go by email only.")).to_be_visible()

    page.get_by_label("Send to").select_option("webhook")
    page.get_by_label("Name").fill("Ops endpoint")
    page.get_by_label("URL").fill("https://10.0.0.8/hook")
    page.get_by_role("button", name="Add channel").click()
    expect(page.get_by_text("10.0.0.8 is a private or internal address")).to_be_visible()

    page.get_by_label("URL").fill(receiver.url())
    page.get_by_role("button", name="Add channel").click()
    secret = page.get_by_test_id("signing-secret").locator("pre").inner_text()
    assert secret.startswith("whsec_")

    page.get_by_label("Send to").select_option("slack")
    page.get_by_label("Name").fill("#marketing-alerts")
    page.get_by_label("URL").fill(receiver.url("/services/T1/B1/abcd"))
    page.get_by_role("button", name="Add channel").click()
    expect(page.get_by_text("Alerts now go to #marketing-alerts too.")).to_be_visible()
    assert secret not in page.content()

    receiver.answers = [(404, "no_service")]
    slack = page.locator("tr", has_text="#marketing-alerts")
    slack.get_by_role("button", name="Send a test").click()
    expect(page.get_by_text("A test alert is on its way to #marketing-alerts")).to_be_visible()
    expect(slack.get_by_test_id("last-delivery")).to_contain_text("Slack says this webhook no longer exists")

    webhook = page.locator("tr", has_text="Ops endpoint")
    webhook.get_by_role("button", name="Send a test").click()
    expect(webhook.get_by_test_id("last-delivery")).to_contain_text("Delivered")
    assert receiver.received[-1].json()["type"] == "test"

    page.once("dialog", lambda dialog: dialog.accept())
    slack.get_by_role("button", name="Remove").click()
    expect(page.get_by_text("Alerts no longer go to #marketing-alerts.")).to_be_visible()
    expect(page.locator("tr", has_text="#marketing-alerts")).to_have_count(0)  # its deliveries went with it
