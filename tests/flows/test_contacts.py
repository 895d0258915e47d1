from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from flows.models import Contact
from tests.factories import ContactFactory, make_flow

pytestmark = pytest.mark.django_db


@pytest.fixture
def contacts(flow):
    now = timezone.now()
    rows = [ContactFactory(flow=flow, email=f"person{i:02d}@example.com") for i in range(7)]
    for i, contact in enumerate(rows):  # person06 is the newest
        Contact.objects.filter(pk=contact.pk).update(created_at=now - timedelta(minutes=10 - i))
    return rows


def _emails(response) -> list[str]:
    return [c.email for c in response.context["page"].contacts]


def test_it_works(alice_client, contacts):
    response = alice_client.get("/w/acme/contacts/")
    assert _emails(response)[:2] == ["person06@example.com", "person05@example.com"]


def test_it_checks_workspace(charlie_client, contacts):
    assert charlie_client.get(f"/w/acme/contacts/{contacts[0].pk}/").status_code == 404
    assert charlie_client.get(f"/w/bravo/contacts/{contacts[0].pk}/").status_code == 404
    assert charlie_client.get("/w/bravo/contacts/").context["page"].contacts == []


def test_it_requires_admin(bob_client, contacts):
    # Contacts are read-only for everyone; a viewer can read them.
    assert bob_client.get("/w/acme/contacts/").status_code == 200
    assert bob_client.post("/w/acme/contacts/").status_code == 403


def test_pages_walk_every_contact_once(alice_client, contacts, settings):
    settings.CONTACTS_PAGE_SIZE = 3
    seen, url = [], "/w/acme/contacts/"
    for _ in range(5):
        response = alice_client.get(url)
        seen += _emails(response)
        cursor = response.context["page"].next_cursor
        if not cursor:
            break
        url = f"/w/acme/contacts/?cursor={cursor}"
    assert seen == [f"person{i:02d}@example.com" for i in range(6, -1, -1)]


def test_same_timestamp_contacts_are_not_skipped(alice_client, flow, settings):
    settings.CONTACTS_PAGE_SIZE = 2
    rows = [ContactFactory(flow=flow) for _ in range(5)]
    Contact.objects.update(created_at=timezone.now())
    first = alice_client.get("/w/acme/contacts/")
    second = alice_client.get(f"/w/acme/contacts/?cursor={first.context['page'].next_cursor}")
    third = alice_client.get(f"/w/acme/contacts/?cursor={second.context['page'].next_cursor}")
    assert len(set(_emails(first) + _emails(second) + _emails(third))) == len(rows)


def test_search_by_email_prefix(alice_client, contacts):
    response = alice_client.get("/w/acme/contacts/?q=PERSON03")
    assert _emails(response) == ["person03@example.com"]


def test_htmx_search_returns_rows_only(alice_client, contacts):
    response = alice_client.get("/w/acme/contacts/?q=person0", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="contact-rows">') and "person01@example.com" in html


def test_filter_by_flow(alice_client, contacts, workspace_a):
    other = make_flow(workspace_a, name="Other")
    ContactFactory(flow=other, email="elsewhere@example.com")
    response = alice_client.get(f"/w/acme/contacts/?flow={other.public_id}")
    assert _emails(response) == ["elsewhere@example.com"]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("q=" + "a" * 300, "Search: Ensure this value has at most 254"),
        ("q=person%00", "Null characters"),
        ("flow=" + "x" * 40, "Flow: Ensure this value has at most 32"),
    ],
)
def test_an_invalid_search_says_why_and_lists_nothing(alice_client, contacts, query, words):
    # Not every contact under the search box: that would read as the search's result.
    for headers in ({}, {"HX-Request": "true"}):
        response = alice_client.get(f"/w/acme/contacts/?{query}", headers=headers)
        html = response.content.decode()
        assert response.status_code == 200  # htmx swaps only 2xx answers in: the message must show
        assert words in html and "person0" not in html  # no contact row, in the page or the htmx partial


def test_bad_cursor_is_ignored(alice_client, contacts):
    assert alice_client.get("/w/acme/contacts/?cursor=%%%garbage").status_code == 200


def test_contact_detail_shows_labels_and_values(alice_client, flow):
    contact = ContactFactory(flow=flow, data={"email": "a@b.co", "age": 36, "vip": True})
    html = alice_client.get(f"/w/acme/contacts/{contact.pk}/").content.decode()
    assert "Age" in html and "36" in html and "Yes" in html
