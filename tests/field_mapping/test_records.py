"""build_record (what a sync sends), the preview (what the admin sees), and drift."""

from __future__ import annotations

import json
import re

import pytest

from field_mapping.services import build_record, mapping_plan, schema_refresh
from integrations.destinations import destination_for
from tests.factories import ContactFactory
from tests.field_mapping.conftest import mapping_post

pytestmark = pytest.mark.django_db
URL = "/w/acme/integrations/iterable/mapping/"


def _preview(client, data, contact=None) -> tuple[dict | None, str]:
    body = {**data, **({"preview_contact": contact.pk} if contact else {})}
    response = client.post(URL + "preview/", body, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<aside class="card preview" id="preview">')
    found = re.search(r'<pre data-testid="preview-body">(.*?)</pre>', html, re.S)
    import html as htmllib

    return (json.loads(htmllib.unescape(found.group(1))) if found else None), html


def test_preview_equals_what_push_sends(alice_client, connected, flows, contact, iterable):
    data = mapping_post(email="email", first_name="firstName", age="age", company="Company", new__shoe_size="Shoe Size")
    preview, _ = _preview(alice_client, data, contact)
    assert preview == {
        "users": [
            {
                "email": "ada@example.com",
                "dataFields": {"firstName": "Ada", "age": 36, "Company": "Acme", "Shoe Size": "M"},
            }
        ],
        "createNewFields": True,
    }
    alice_client.post(URL, data)
    plan = mapping_plan(integration=connected)
    record = build_record(contact.data, plan)
    destination_for(connected).push([record.payload], create_new_fields=plan.create_new_fields)
    sent = iterable.requests("/api/users/bulkUpdate")[-1]["body"]
    assert sent == preview
    assert iterable.user("ada@example.com")["dataFields"]["Shoe Size"] == "M"


def test_preview_follows_unsaved_changes_and_the_picked_contact(alice_client, connected, flows, contact):
    other = ContactFactory(
        flow=flows[1], email="bo@example.com", data={"email": "bo@example.com", "city": "Oslo", "vip": True}
    )
    preview, _ = _preview(alice_client, mapping_post(email="email", new__city="address.city", vip="vip"), other)
    assert preview["users"][0]["dataFields"] == {"address": {"city": "Oslo"}, "vip": True}
    assert preview["users"][0]["mergeNestedObjects"] is True  # nested fields add to the object, never replace it


def test_preview_lists_what_is_not_sent_and_why(alice_client, connected, flows, contact):
    _, html = _preview(alice_client, mapping_post(email="email", city="Company"), contact)
    assert "<code>city</code>: empty: not sent" in html


def test_preview_shows_a_bad_value_as_a_failure_of_this_contact(alice_client, connected, flows):
    odd = ContactFactory(flow=flows[0], email="x@example.com", data={"email": "x@example.com", "age": 36.5})
    _, html = _preview(alice_client, mapping_post(email="email", age="age"), odd)
    assert "This contact would fail: field age: 36.5 is not a whole number" in html


def test_preview_says_when_the_identifier_is_missing(alice_client, connected, flows):
    nameless = ContactFactory(flow=flows[1], email="", data={"city": "Oslo"})
    _, html = _preview(alice_client, mapping_post(email="email"), nameless)
    assert "would be skipped: no email" in html


def test_empty_values_are_sent_only_when_asked(connected, flows, alice_client, contact):
    alice_client.post(URL, mapping_post(email="email", city="Company", job_title="jobTitle", empty__job_title="on"))
    record = build_record(contact.data, mapping_plan(integration=connected))
    assert record.payload["dataFields"] == {"jobTitle": None}


def test_precedence_first_non_empty_wins(connected, flows, alice_client):
    alice_client.post(
        URL, mapping_post(email="email", first_name="firstName", company="firstName", confirm_shared="on")
    )
    plan = mapping_plan(integration=connected)
    # The page lists company before first_name (standard fields by key), so company wins when both are set.
    assert build_record({"email": "a@b.co", "first_name": "Ada"}, plan).payload["dataFields"] == {"firstName": "Ada"}
    both = build_record({"email": "a@b.co", "first_name": "Ada", "company": "Acme"}, plan)
    assert both.payload["dataFields"] == {"firstName": "Acme"} and both.skipped[0][0] == "first_name"


def test_drift_warns_on_the_tile_and_fails_the_affected_records(alice_client, connected, flows, contact, iterable):
    alice_client.post(URL, mapping_post(email="email", first_name="firstName", age="age"))
    iterable.set_fields({"age": "string"})  # someone changed the field in Iterable
    schema_refresh(integration=connected)
    tile = alice_client.get("/w/acme/integrations/").content.decode()
    assert "Mapping needs attention" in tile and "&#x27;age&#x27; is now string" in tile
    assert "is now string" in alice_client.get(URL).content.decode()
    record = build_record(contact.data, mapping_plan(integration=connected))
    assert record.status == "error" and "Iterable's field 'age' is now string (it was long" in record.reason
    iterable.set_fields({"age": None})  # ...or deleted it
    schema_refresh(integration=connected)
    assert "no longer has the field 'age'" in build_record(contact.data, mapping_plan(integration=connected)).reason


def test_a_created_field_is_not_drift(alice_client, connected, flows, contact):
    alice_client.post(URL, mapping_post(email="email", new__shoe_size="shoeSize"))
    plan = mapping_plan(integration=connected)
    destination_for(connected).push([build_record(contact.data, plan).payload], create_new_fields=True)
    schema_refresh(integration=connected)
    assert build_record(contact.data, mapping_plan(integration=connected)).status == "ok"
