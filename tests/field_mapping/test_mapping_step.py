from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from field_mapping.models import DestinationSchema, FieldMapping
from field_mapping.services import source_fields
from tests.field_mapping.conftest import mapping_post
from tests.html import form_values
from workspaces.models import AuditEvent

pytestmark = pytest.mark.django_db
URL = "/w/acme/integrations/iterable/mapping/"


def _selected(response, key):
    row = next(r for r in response.context["rows"] if r["source"].key == key)
    return row["choice"].target


def test_it_works(alice_client, connected, flows):
    response = alice_client.get(URL)
    assert response.status_code == 200
    rows = {r["source"].key: r["source"] for r in response.context["rows"]}
    assert set(rows) >= {"email", "first_name", "age", "company", "job_title", "shoe_size", "city", "vip"}
    assert rows["age"].flows == ["Booth", "Store"]  # one row per field, with the flows that use it


def test_it_checks_workspace(charlie_client, connected):
    assert charlie_client.get(URL).status_code == 404


def test_it_requires_admin(bob_client, connected):
    assert bob_client.get(URL).status_code == 403
    assert bob_client.post(URL, mapping_post(email="email")).status_code == 403


def test_suggestions_are_preselected(alice_client, connected, flows):
    response = alice_client.get(URL)
    assert _selected(response, "email") == "email"
    assert _selected(response, "first_name") == "firstName"
    assert _selected(response, "company") == "Company"  # case-insensitive name match
    assert _selected(response, "job_title") == "jobTitle"  # job_title ~ jobTitle
    assert _selected(response, "age") == "age"
    assert _selected(response, "shoe_size") == ""  # nothing alike: don't sync


def test_the_identifier_is_required(alice_client, connected, flows):
    response = alice_client.post(URL, mapping_post(email="", first_name="firstName"))
    assert response.status_code == 400
    assert "Map a form field to 'email' or 'userId'" in response.context["errors"]["__all__"]
    assert not FieldMapping.objects.exists()


def test_a_user_id_project_requires_user_id(alice_client, connected, flows):
    connected.config = {**connected.config, "project_type": "userId"}
    connected.save()
    response = alice_client.post(URL, mapping_post(email="email", first_name="firstName"))
    assert response.status_code == 400
    assert (
        "Map a form field to 'userId': Iterable identifies people by it (US data center, userid-based project)"
        in (response.context["errors"]["__all__"])
    )
    assert "identifies people by <code>userId</code>" in alice_client.get(URL).content.decode()


def test_two_fields_to_one_target_need_a_confirmed_precedence(alice_client, connected, flows):
    data = mapping_post(email="email", first_name="firstName", company="firstName")
    response = alice_client.post(URL, data)
    assert response.status_code == 400
    assert "Pick which one wins when both have a value and confirm" in response.context["errors"]["__shared__"]
    assert alice_client.post(URL, {**data, "confirm_shared": "on"}).status_code == 302
    assert FieldMapping.objects.filter(target="firstName").count() == 2


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("1stVisit", "not a valid Iterable field name"),
        ("shoe$size", "not a valid"),
        ("a..b", "not a valid"),
        ("age", "already has a field 'age'"),
        ("", "not a valid"),
        ("shoe  size", "stray spaces"),
        ("shoe .size", "stray spaces"),
        ("signupDate", "a field Iterable manages itself"),
        ("address", "a field Iterable manages itself (or an object)"),
        ("store_geo_location", "_geo_location hold coordinates"),
        ("age.years", "'age' is a long field, so it cannot hold 'age.years'"),
        ("AGE", "Names are case-sensitive, so 'AGE' would be a second field: pick 'age'"),
    ],
)
def test_new_field_names_are_validated(alice_client, connected, flows, name, error):
    response = alice_client.post(URL, mapping_post(email="email", new__shoe_size=name))
    assert (
        response.status_code == 400
        and error
        in response.context["rows"][[r["source"].key for r in response.context["rows"]].index("shoe_size")]["error"]
    )


def test_a_new_field_takes_its_type_from_the_form_field(alice_client, connected, flows):
    response = alice_client.post(
        URL, mapping_post(email="email", new__shoe_size="Shoe Size", new__vip="isVip", new__city="address.city")
    )
    assert response.status_code == 302
    types = {m.source_key: (m.target, m.target_type, m.create_new) for m in FieldMapping.objects.all()}
    assert types["shoe_size"] == ("Shoe Size", "string", True)
    assert types["vip"] == ("isVip", "boolean", True)
    assert types["city"] == ("address.city", "string", True)
    assert types["age"][0] == ""  # not in the POST: don't sync


def test_saving_is_audited_as_numbered_versions(alice_client, connected, flows):
    alice_client.post(URL, mapping_post(email="email", first_name="firstName"))
    alice_client.post(URL, mapping_post(email="email", first_name="", age="age", empty__age="on"))
    events = list(AuditEvent.objects.filter(verb="mapping.saved").order_by("id"))
    assert [e.data["version"] for e in events] == [1, 2]
    changes = events[1].data["changes"]
    assert set(changes) == {"age", "first_name"}
    assert changes["first_name"]["from"]["target"] == "firstName" and changes["first_name"]["to"]["target"] == ""
    assert changes["age"]["from"]["target"] == "" and changes["age"]["to"] == {
        "target": "age",
        "type": "long",
        "create_new": False,
        "send_empty": True,
        "position": [s.key for s in source_fields(integration=connected)].index("age"),
    }
    # The whole mapping of each version is kept, so any earlier one can be read back.
    assert events[0].data["mapping"]["first_name"]["target"] == "firstName"
    assert events[1].actor_email == "alice@example.com"


def test_the_schema_is_cached_and_refreshable(alice_client, connected, flows, iterable):
    alice_client.get(URL)
    alice_client.get(URL)
    assert iterable.stats()["counts"].get("/api/users/getFields") == 2  # verify's probe + one fetch
    iterable.set_fields({"loyaltyTier": "string"})
    alice_client.post(URL + "refresh/")
    assert "loyaltyTier" in DestinationSchema.objects.get().fields
    assert "loyaltyTier" in alice_client.get(URL).content.decode()


def test_the_preview_never_fetches_the_schema_again(alice_client, connected, flows, iterable):
    alice_client.get(URL)
    before = iterable.stats()["counts"].get("/api/users/getFields")
    DestinationSchema.objects.update(fetched_at=timezone.now() - timedelta(hours=1))  # stale
    for _ in range(3):
        alice_client.post(URL + "preview/", mapping_post(email="email"), headers={"HX-Request": "true"})
    assert iterable.stats()["counts"].get("/api/users/getFields") == before


def test_a_failed_fetch_is_not_retried_on_every_page_load(alice_client, connected, flows, iterable):
    alice_client.get(URL)
    DestinationSchema.objects.update(fetched_at=timezone.now() - timedelta(hours=1))
    iterable.fault("/api/users/getFields", status=500, times=50)
    alice_client.get(URL)
    failed = iterable.stats()["counts"].get("/api/users/getFields")
    alice_client.get(URL)
    alice_client.get(URL)
    assert iterable.stats()["counts"].get("/api/users/getFields") == failed


def test_a_failed_refresh_keeps_the_last_copy_and_says_why(alice_client, connected, flows, iterable):
    alice_client.get(URL)
    iterable.fault("/api/users/getFields", status=500, times=10)
    response = alice_client.post(URL + "refresh/", follow=True)
    assert "Could not fetch Iterable&#x27;s fields" in response.content.decode()
    schema = DestinationSchema.objects.get()
    assert schema.last_error and "age" in schema.fields
    assert "The last refresh failed" in response.content.decode()


def test_the_mapping_page_survives_a_new_flow_field(alice_client, connected, flows):
    alice_client.post(URL, mapping_post(email="email", first_name="firstName"))
    from tests.factories import FlowFieldFactory

    FlowFieldFactory(flow=flows[0], key="birthday", label="Birthday", field_type="date")
    response = alice_client.get(URL)
    assert _selected(response, "first_name") == "firstName" and _selected(response, "birthday") == "birthday"


def _saved() -> dict[str, tuple]:
    return {
        m.source_key: (m.target, m.target_type, m.create_new, m.send_empty, m.position)
        for m in FieldMapping.objects.all()
    }


def test_a_saved_mapping_reopens_as_saved_and_saves_again_unchanged(alice_client, connected, flows):
    """Every attribute comes back on the next visit, the confirmed precedence included: the form as
    rendered, submitted untouched, is accepted and stores the same mapping."""
    data = mapping_post(
        email="email",
        company="firstName",
        first_name="firstName",  # company comes first in the table: first_name must be picked to win
        age="age",
        empty__age="on",
        new__shoe_size="shoeSize",
        job_title="",
        confirm_shared="on",
    )
    assert alice_client.post(URL, {**data, "first__firstName": "first_name"}).status_code == 302
    saved = _saved()
    assert [k for k, *_ in sorted(saved.items(), key=lambda kv: kv[1][4]) if saved[k][0] == "firstName"] == [
        "first_name",
        "company",
    ]

    response = alice_client.get(URL)
    assert response.context["confirm_shared"] is True
    submitted = form_values(response.content.decode(), "mapping-form")
    assert submitted["confirm_shared"] == "on"
    assert submitted["first__firstName"] == "first_name"
    assert submitted["empty__age"] == "on" and "empty__email" not in submitted
    assert (submitted["target__shoe_size"], submitted["new__shoe_size"]) == ("__new__", "shoeSize")
    assert submitted["target__job_title"] == "" and submitted["target__company"] == "firstName"

    assert alice_client.post(URL, submitted).status_code == 302  # was refused: precedence "unconfirmed"
    assert _saved() == saved


def test_a_shared_target_a_new_field_joins_is_asked_again(alice_client, connected, flows):
    """The confirmation covered the shared targets as saved; a suggestion for a field added since that
    joins one is a new question."""
    data = mapping_post(email="email", first_name="jobTitle", job_title="jobTitle", confirm_shared="on")
    assert alice_client.post(URL, data).status_code == 302
    assert alice_client.get(URL).context["confirm_shared"] is True
    from tests.factories import FlowFieldFactory

    FlowFieldFactory(flow=flows[1], key="jobtitle", label="Job title")  # suggested: jobTitle
    response = alice_client.get(URL)
    assert response.context["shared"]["jobTitle"] == ["first_name", "job_title", "jobtitle"]
    assert response.context["confirm_shared"] is False


def test_a_saved_target_gone_from_iterable_stays_selected(alice_client, connected, flows, iterable):
    """Drift: the page shows the saved target (and why it is a problem), not "Don't sync"."""
    assert alice_client.post(URL, mapping_post(email="email", age="age")).status_code == 302
    iterable.set_fields({"age": None})  # gone from the project
    alice_client.post("/w/acme/integrations/iterable/mapping/refresh/")
    response = alice_client.get(URL)
    assert form_values(response.content.decode(), "mapping-form")["target__age"] == "age"
    row = next(r for r in response.context["rows"] if r["source"].key == "age")
    assert "Iterable no longer has the field 'age'" in row["problem"]
