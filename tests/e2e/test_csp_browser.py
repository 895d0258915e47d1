"""In headless Chromium, under the app's Content-Security-Policy: a hostile member's email runs nothing,
and the pages (htmx included) and the admin work without a single policy violation or script error."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.sync.conftest import capture  # noqa: F401 - the same capture path
from tests.sync_logs.factories import run_with_records
from workspaces.models import Membership, Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE_EMAIL = "x'-alert`1`-'@attacker.example"


class Watch:
    """Every dialog the page opens, and every console error or uncaught exception (a CSP violation is one)."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.answer = False  # how the next confirm is answered
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _console(self, message) -> None:
        # The browser asks for /favicon.ico on pages that name no icon (Django's admin): not a page's error.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def _dialog(self, dialog) -> None:
        self.dialogs.append((dialog.type, dialog.message))
        if self.answer:
            dialog.accept()
        else:
            dialog.dismiss()


def test_a_hostile_member_email_runs_nothing_when_an_admin_clicks_remove(
    page: Page, live_server, log_in, alice, workspace_a
):
    hostile = MembershipFactory(workspace=workspace_a, user=UserFactory(email=HOSTILE_EMAIL), role=Role.VIEWER)
    watch = Watch(page)
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/settings/members/")
    page.wait_for_load_state("load")
    row = page.get_by_role("row").filter(has_text=HOSTILE_EMAIL)

    row.get_by_role("button", name="Remove").click()  # dismissed
    expect(row).to_be_visible()
    # One dialog, the confirm, with the email as plain text: the alert in it never ran.
    assert watch.dialogs == [("confirm", f"Remove {HOSTILE_EMAIL} from this workspace?")]
    assert Membership.objects.filter(pk=hostile.pk).exists()

    watch.answer = True
    row.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("row").filter(has_text=HOSTILE_EMAIL)).to_have_count(0)
    assert [kind for kind, _ in watch.dialogs] == ["confirm", "confirm"]
    assert not Membership.objects.filter(pk=hostile.pk).exists()
    assert watch.errors == []


def _open(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")  # htmx binds its triggers on DOMContentLoaded


def test_the_pages_work_under_the_policy_without_a_violation(
    page: Page,
    live_server,
    log_in,
    alice,
    bob,
    integration,
    capture,  # noqa: F811 - the fixture imported above
    flow,
):
    contacts = capture(3, age=30)
    run = run_with_records(integration, 60, failed_every=3)
    base = f"{live_server.url}/w/acme"
    watch = Watch(page)
    log_in(alice)

    # The policy is enforced: markup with an inline handler, put into the page, runs nothing and is reported.
    _open(page, f"{base}/")
    page.evaluate(
        "document.body.insertAdjacentHTML('beforeend', '<img src=\"/static/favicon.svg\" onload=\"alert(1)\">')"
    )
    expect(page.locator("img[onload]")).to_have_js_property("complete", True)
    page.evaluate("1")  # a round trip: the console message of the refused handler has arrived
    assert watch.dialogs == []
    assert any("Content Security Policy" in e for e in watch.errors), watch.errors
    watch.errors.clear()

    for path in ["/", "/flows/", "/flows/new/", "/settings/", "/settings/api/", "/settings/audit/", "/integrations/"]:
        _open(page, base + path)
    _open(page, f"{base}/integrations/iterable/")
    _open(page, f"{base}/integrations/iterable/connect/")
    _open(page, f"{base}/integrations/iterable/sync/")

    # htmx: move a field of the flow (a partial swapped in).
    _open(page, f"{base}/flows/{flow.pk}/")
    first = page.locator("[data-field]").first
    expect(first).to_have_attribute("data-field", "email")
    first.get_by_title("Move down").click()
    expect(page.locator("[data-field]").first).to_have_attribute("data-field", "first_name")

    # htmx: the contact search, then a contact's page.
    _open(page, f"{base}/contacts/")
    page.get_by_label("Search by email").fill("user1")
    expect(page).to_have_url(re.compile(r"q=user1"))
    expect(page.locator("#contact-rows")).to_contain_text("user1@example.com")
    _open(page, f"{base}/contacts/{contacts[0].pk}/")

    # htmx: the mapping preview follows the form; "Create new field…" shows its name input (app.js).
    _open(page, f"{base}/integrations/iterable/mapping/")
    preview = page.get_by_test_id("preview-body")
    expect(preview).to_contain_text('"firstName"')
    page.get_by_label("Iterable field for First name").select_option("")
    expect(preview).not_to_contain_text('"firstName"')
    page.get_by_label("Iterable field for Notes").select_option("")
    expect(page.get_by_label("New field name for Notes")).to_be_hidden()
    page.get_by_label("Iterable field for Notes").select_option("__new__")
    expect(page.get_by_label("New field name for Notes")).to_be_visible()

    # htmx: the sync logs, their bar, the status filter and the pager.
    _open(page, f"{base}/integrations/iterable/logs/")
    expect(page.locator("svg.runbar").first).to_be_visible()
    _open(page, f"{base}/integrations/iterable/logs/runs/{run.pk}/")
    page.get_by_label("Status").select_option("failed")
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page.locator("[data-record]")).to_have_count(20)
    _open(page, f"{base}/integrations/iterable/logs/runs/{run.pk}/")
    expect(page.locator("[data-record]")).to_have_count(50)
    page.get_by_test_id("next").click()
    expect(page.locator("[data-record]")).to_have_count(10)

    # Members: the role select submits itself (app.js), the switcher navigates.
    _open(page, f"{base}/settings/members/")
    page.get_by_label("Role of bob@example.com").select_option("admin")
    expect(page.get_by_label("Role of bob@example.com")).to_have_value("admin")
    assert Membership.objects.get(user=bob).role == Role.ADMIN
    page.get_by_label("Switch workspace").select_option("__new__")
    expect(page).to_have_url(f"{live_server.url}/new/")

    assert watch.dialogs == []
    assert watch.errors == []


def test_the_admin_works_under_the_policy(page: Page, live_server, integration):
    UserFactory(email="support@flowsync.test", is_staff=True, is_superuser=True)
    run = run_with_records(integration, 3, failed_every=2)
    record = run.records.filter(status="failed").first()
    admin = f"{live_server.url}/{settings.ADMIN_URL}"
    watch = Watch(page)
    page.goto(f"{admin}login/")
    page.locator("#id_username").fill("support@flowsync.test")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user-tools")).to_be_visible()
    for path in [
        "",
        "integrations/integration/",
        f"integrations/integration/{integration.pk}/change/",
        "sync_logs/syncrun/",
        f"sync_logs/syncrun/{run.pk}/change/",
        "sync_logs/syncrecord/?status=failed",
        f"sync_logs/syncrecord/{record.pk}/change/",
        "accounts/user/",
        "workspaces/auditevent/",
    ]:
        _open(page, admin + path)
        expect(page.locator("#content")).to_be_visible()
    # The admin's own scripts run: the changelist's "select all" ticks every row.
    _open(page, admin + "sync_logs/syncrun/")
    page.locator("#action-toggle").check()
    expect(page.locator("input.action-select").first).to_be_checked()
    assert watch.errors == []
