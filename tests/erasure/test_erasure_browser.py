"""In headless Chromium: an admin erases a person from their contact page and follows the request."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from erasure import services
from erasure.models import ErasureStep
from erasure.tasks import erasure_step_run
from flows.models import Contact

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_erase_a_person_from_their_contact_page(
    page: Page, live_server, log_in, alice, integration, capture, iterable, monkeypatch
):
    queued: list[int] = []
    monkeypatch.setattr(erasure_step_run, "apply_async", lambda args=None, kwargs=None, **kw: queued.append(args[0]))
    (contact,) = capture(1)
    log_in(alice)
    page.goto(f"{live_server.url}/w/acme/contacts/{contact.pk}/")
    page.get_by_text("Erase this person…").click()
    erase = page.get_by_test_id("erase")
    erase.get_by_role("button", name="Erase this person").click()  # not confirmed: the browser asks for the box
    assert Contact.objects.filter(pk=contact.pk).exists()
    erase.get_by_label("I understand this cannot be undone").check()
    erase.get_by_role("button", name="Erase this person").click()
    expect(
        page.get_by_text("1 contact deleted, their sync-log data removed; 1 destination will be asked")
    ).to_be_visible()
    assert not Contact.objects.filter(pk=contact.pk).exists()
    row = page.locator("[data-erasure]").first
    expect(row).to_contain_text("Iterable: Waiting")
    assert "user0@example.com" not in row.inner_text()

    (step_id,) = queued
    ErasureStep.objects.filter(pk=step_id).update(due_at=ErasureStep.objects.get(pk=step_id).request.created_at)
    assert services.erasure_step_attempt(step_id) == "done"
    page.reload()
    expect(page.locator("[data-erasure]").first).to_contain_text("Iterable: Done")
