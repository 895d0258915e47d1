"""In headless Chromium: connect Customer.io (an EU workspace that identifies people by email), map the fields,
Save & Sync Now with a real worker, read the run in the sync log and find the people in Customer.io's emulator;
a wrong Track API key is refused on the connect page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from sync_logs.models import SyncRun
from tests.sync.conftest import capture  # noqa: F401 - contacts through the real capture path
from tests.sync.destinations import CustomerIOHarness

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _connect_page(page: Page, live_server):
    page.goto(f"{live_server.url}/w/acme/integrations/")
    tile = page.locator('[data-destination="customerio"]')
    expect(tile).to_contain_text("Not connected")
    tile.get_by_role("link", name="Connect App").click()
    expect(page.get_by_role("heading", name="Connect Customer.io")).to_be_visible()


@pytest.mark.worker
def test_connect_map_and_sync_people_to_an_eu_workspace(
    page: Page,
    live_server,
    log_in,
    alice,
    capture,  # noqa: F811 - the fixture imported above
    customerio,
    start_worker,
    settings,
):
    eu = customerio.eu
    capture(3, age=41, notes="met at the booth")
    # Nothing is connected yet, so these wait for the backfill that Save & Sync Now asks for.
    worker = start_worker(extra_env=CustomerIOHarness(customerio).worker_env())
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue

    errors: list[str] = []
    # Under the CSP a blocked inline script or style is a console error: the pages must make none.
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(alice)
    _connect_page(page, live_server)
    page.get_by_label("Site ID").fill(eu.site_id)
    page.get_by_label("Track API key").fill(eu.api_key)
    page.get_by_label("People are identified by").select_option("email")
    page.get_by_label("App API key (optional)").fill(eu.app_key)
    page.get_by_role("button", name="Verify and connect").click()
    # The form has no region: Customer.io's region check placed the pair in the EU.
    expect(page.get_by_text("Connected to Customer.io")).to_contain_text("EU region")
    expect(page.get_by_role("heading", name="Map fields to Customer.io")).to_be_visible()

    page.get_by_label("Customer.io field for Email").select_option("email")
    page.get_by_label("Customer.io field for First name").select_option("first_name")
    page.get_by_label("Customer.io field for Age").select_option(label="Create new field…")
    page.get_by_label("New field name for Age").fill("visitor_age")
    page.get_by_label("Customer.io field for Notes").select_option("")
    # The preview (htmx, unsaved) is the batch body a sync sends: the person by email, the new attribute in it.
    preview = page.get_by_test_id("preview-body")
    expect(preview).to_contain_text('"visitor_age": 41')
    expect(preview).to_contain_text('"email": "user')
    expect(preview).not_to_contain_text("met at the booth")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.get_by_text("Field mapping saved.")).to_be_visible()

    page.get_by_role("link", name="Sync frequency").click()
    page.get_by_label("Also sync the contacts captured before today").check()
    page.get_by_role("button", name="Save & Sync Now").click()
    expect(page.get_by_text("3 earlier contacts were queued. Sync started.")).to_be_visible()
    run = SyncRun.objects.get(integration__kind="customerio")
    expect(page.locator(f"#run-{run.pk}")).to_have_attribute("data-status", "succeeded", timeout=60_000)

    page.get_by_role("link", name="All integrations").click()
    tile = page.locator('[data-destination="customerio"]')
    tile.get_by_label("More actions").click()
    tile.locator(".menu-items").get_by_role("link", name="Sync Logs").click()
    page.get_by_role("link", name=f"#{run.pk}").click()
    expect(page.get_by_test_id("delivered")).to_have_text("3")
    records = page.locator("[data-record]")
    expect(records).to_have_count(3)
    for index in range(3):
        expect(records.nth(index)).to_have_attribute("data-status", "delivered")
    expect(page.get_by_text("user1@example.com")).to_be_visible()

    people = {person["email"]: person for person in customerio.people(eu.site_id)}
    assert sorted(people) == ["user0@example.com", "user1@example.com", "user2@example.com"]
    for i in range(3):
        attributes = people[f"user{i}@example.com"]["attributes"]
        assert attributes["first_name"] == f"User{i}"
        assert attributes["visitor_age"] == 41
        assert "notes" not in attributes and "age" not in attributes
    assert customerio.requests("/api/v2/batch", region="eu")
    assert not customerio.requests("/api/v2/batch", region="us")
    assert errors == []


def test_a_wrong_track_key_is_refused_on_the_connect_page(page: Page, live_server, log_in, alice, customerio):
    log_in(alice)
    _connect_page(page, live_server)
    page.get_by_label("Site ID").fill(customerio.eu.site_id)
    page.get_by_label("Track API key").fill("not-the-track-key")
    page.get_by_label("People are identified by").select_option("email")
    page.get_by_role("button", name="Verify and connect").click()
    expect(page.get_by_text("Customer.io does not recognise this Site ID and Track API key pair.")).to_be_visible()
    expect(page.get_by_text("copy the Site ID and the Track API key from the same row")).to_be_visible()
    # Nothing was saved: the form is still there, and so is "Not connected" on the tile.
    expect(page.get_by_label("Site ID")).to_have_value(customerio.eu.site_id)
    page.goto(f"{live_server.url}/w/acme/integrations/")
    expect(page.locator('[data-destination="customerio"]')).to_contain_text("Not connected")
    assert customerio.people(customerio.eu.site_id) == []
