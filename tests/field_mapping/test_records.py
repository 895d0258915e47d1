"""build_record (what a sync sends), the preview (what the admin sees), and drift."""

from __future__ import annotations

import json
import re

import pytest

from field_mapping.services import MappingPlan, PlannedField, build_record, mapping_plan, schema_refresh
from integrations import engine
from integrations.destinations import destination_for
from integrations.destinations.iterable import IterableDestination
from integrations.models import OutboxItem
from integrations.sync import sync_now
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
    # Through the sync engine, as a real run sends it.
    OutboxItem.objects.create(integration=connected, contact=contact)
    engine.sync_run_execute(sync_now(integration=connected).pk)
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
    assert "This contact would fail: age → age: 36.5 is not a whole number" in html


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


def test_the_admin_picks_which_field_wins(connected, flows, alice_client):
    data = mapping_post(email="email", first_name="firstName", company="firstName", confirm_shared="on")
    alice_client.post(URL, {**data, "first__firstName": "first_name"})
    both = build_record(
        {"email": "a@b.co", "first_name": "Ada", "company": "Acme"}, mapping_plan(integration=connected)
    )
    assert both.payload["dataFields"] == {"firstName": "Ada"}
    page = alice_client.get(URL).content.decode()  # the saved precedence is shown again
    assert '<option value="first_name" selected>first_name wins</option>' in page


def test_the_preview_offers_the_precedence_only_for_shared_fields(alice_client, connected, flows, contact):
    _, html = _preview(alice_client, mapping_post(email="email", first_name="firstName"), contact)
    assert 'data-testid="shared-targets"' not in html
    data = mapping_post(email="email", first_name="firstName", company="firstName", confirm_shared="on")
    preview, html = _preview(alice_client, {**data, "first__firstName": "first_name"}, contact)
    assert 'name="first__firstName"' in html and preview["users"][0]["dataFields"]["firstName"] == "Ada"


def test_an_empty_nested_field_is_sent_as_a_nested_null(connected, flows, alice_client):
    alice_client.post(URL, mapping_post(email="email", new__city="address.city", empty__city="on"))
    record = build_record({"email": "a@b.co", "city": ""}, mapping_plan(integration=connected))
    assert record.payload["dataFields"] == {"address": {"city": None}}
    assert record.payload["mergeNestedObjects"] is True  # erases the city, keeps the rest of the address


@pytest.mark.parametrize("kind", ["string", "long", "double", "boolean", "date"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_empty_input_of_every_type_is_not_sent(kind, value):
    plan = MappingPlan(
        destination=IterableDestination,
        config={"project_type": "email"},
        fields=[PlannedField("email", "email", "string", False), PlannedField("x", "x", kind, False)],
        create_new_fields=False,
    )
    record = build_record({"email": "a@b.co", "x": value}, plan)
    assert record.status == "ok" and record.payload["dataFields"] == {} and record.skipped[0][0] == "x"


def _identifier_plan(project_type: str) -> MappingPlan:
    return MappingPlan(
        destination=IterableDestination,
        config={"project_type": project_type},
        fields=[PlannedField("email", "email", "string", False), PlannedField("uid", "userId", "string", False)],
        create_new_fields=False,
    )


@pytest.mark.parametrize(
    ("project_type", "data", "status", "identifier"),
    [
        ("hybrid", {"email": "A@b.co"}, "ok", "a@b.co"),
        ("hybrid", {"uid": "u-1"}, "ok", "u-1"),
        ("email", {"email": "a@b.co", "uid": "u-1"}, "ok", "a@b.co"),
        # An unknown userId sent alone is an error in an email-based project (reference 6.1).
        ("email", {"uid": "u-1"}, "skip", ""),
        ("userId", {"email": "a@b.co", "uid": "u-1"}, "ok", "u-1"),
        # A userID-based project does not identify users by email.
        ("userId", {"email": "a@b.co"}, "skip", ""),
    ],
)
def test_each_project_type_takes_only_its_identifiers(project_type, data, status, identifier):
    record = build_record(data, _identifier_plan(project_type))
    assert (record.status, record.identifier) == (status, identifier)
    if status == "skip":
        wanted = {"email": "no email", "userId": "no userId"}[project_type]
        assert record.reason.startswith(wanted)


@pytest.mark.parametrize(
    ("user_id", "message"),
    [("u" * 53, "longer than Iterable's 52 characters"), ("jürgen", "characters Iterable refuses")],
)
def test_a_user_id_iterable_would_refuse_fails_its_record(user_id, message):
    record = build_record({"uid": user_id}, _identifier_plan("userId"))
    assert record.status == "error" and message in record.reason


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


def test_drift_reaches_the_tile_without_a_sync_or_a_visit(alice_client, connected, flows, iterable):
    from datetime import timedelta

    from django.utils import timezone

    from field_mapping.models import DestinationSchema
    from field_mapping.services import schemas_refresh_stale

    alice_client.post(URL, mapping_post(email="email", age="age"))
    iterable.set_fields({"age": "string"})
    assert schemas_refresh_stale() == 0  # the copy is fresh: nothing fetched
    DestinationSchema.objects.update(fetched_at=timezone.now() - timedelta(hours=2))
    assert schemas_refresh_stale() == 1
    assert "&#x27;age&#x27; is now string" in alice_client.get("/w/acme/integrations/").content.decode()


def test_a_choice_whose_types_do_not_fit_is_flagged_in_its_row(connected, flows):
    from field_mapping.services import RowChoice, mapping_type_warnings, source_fields

    available = {"age": "long", "Company": "string", "vip": "boolean", "birthday": "date"}
    choices = [
        RowChoice("company", "age"),
        RowChoice("age", "Company"),
        RowChoice("vip", "vip"),
        RowChoice("city", "birthday"),
    ]
    warnings = mapping_type_warnings(
        integration=connected, choices=choices, available=available, sources=source_fields(integration=connected)
    )
    assert set(warnings) == {"company", "city"}  # text into a number, text into a date; a number into text is fine
    assert warnings["company"].startswith("A text field into a long field: a value like 'Acme' fails")
