from __future__ import annotations

import pytest

from flows.models import ConversionFlow, FieldType, FlowField
from workspaces.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_it_works(alice_client, flow):
    response = alice_client.get(f"/w/acme/flows/{flow.pk}/")
    assert response.status_code == 200 and flow.public_id in response.content.decode()


def test_it_checks_workspace(charlie_client, flow):
    assert charlie_client.get(f"/w/acme/flows/{flow.pk}/").status_code == 404
    assert charlie_client.get(f"/w/bravo/flows/{flow.pk}/").status_code == 404  # own workspace, foreign flow


def test_it_requires_admin(bob_client, flow):
    assert bob_client.get(f"/w/acme/flows/{flow.pk}/").status_code == 200
    response = bob_client.post(f"/w/acme/flows/{flow.pk}/fields/add/", {"kind": "standard", "key": "company"})
    assert response.status_code == 403
    assert not flow.fields.filter(key="company").exists()


def test_create_flow_starts_with_a_required_email(alice_client, workspace_a):
    response = alice_client.post("/w/acme/flows/new/", {"name": "Booth"})
    flow = ConversionFlow.objects.get(name="Booth")
    assert response["Location"] == f"/w/acme/flows/{flow.pk}/"
    assert list(flow.fields.values_list("key", "required")) == [("email", True)]
    assert flow.workspace == workspace_a and len(flow.public_id) >= 8


def test_add_standard_and_custom_fields(alice_client, flow):
    url = f"/w/acme/flows/{flow.pk}/fields/add/"
    alice_client.post(url, {"kind": "standard", "key": "company", "required": "on"})
    alice_client.post(
        url,
        {"kind": "custom", "label": "Shoe size", "key": "shoe_size", "field_type": "choice", "choices": "S, M, L, M"},
    )
    company = flow.fields.get(key="company")
    assert (company.label, company.field_type, company.required) == ("Company", FieldType.TEXT, True)
    shoe = flow.fields.get(key="shoe_size")
    assert (shoe.kind, shoe.field_type, shoe.choices) == ("custom", "choice", ["S", "M", "L"])
    assert AuditEvent.objects.filter(verb="flow.field_added").count() == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "custom", "label": "X", "key": "Bad Key", "field_type": "text"}, "lower-case"),
        ({"kind": "custom", "label": "X", "key": "email", "field_type": "text"}, "standard field"),
        ({"kind": "custom", "label": "X", "key": "first_name_2", "field_type": "email"}, "field_type"),
        ({"kind": "custom", "label": "X", "key": "tier", "field_type": "choice", "choices": "Gold"}, "two options"),
        ({"kind": "custom", "label": "X", "key": "age", "field_type": "number"}, "already has"),
    ],
)
def test_bad_custom_fields_are_refused_with_a_reason(alice_client, flow, data, message):
    before = flow.fields.count()
    response = alice_client.post(f"/w/acme/flows/{flow.pk}/fields/add/", data, follow=True)
    assert message in response.content.decode()
    assert flow.fields.count() == before


def test_htmx_field_changes_return_the_fields_panel(alice_client, flow):
    response = alice_client.post(
        f"/w/acme/flows/{flow.pk}/fields/add/", {"kind": "standard", "key": "company"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<section id="fields-panel">')
    assert "company" in html and "<html" not in html


def test_move_and_delete_fields(alice_client, flow):
    keys = lambda: list(flow.fields.values_list("key", flat=True))  # noqa: E731
    first, second = keys()[:2]
    field = flow.fields.get(key=second)
    alice_client.post(f"/w/acme/flows/{flow.pk}/fields/{field.pk}/move/", {"direction": "up"})
    assert keys()[:2] == [second, first]
    alice_client.post(f"/w/acme/flows/{flow.pk}/fields/{field.pk}/delete/")
    assert second not in keys()


def test_edit_field_label_required_and_choices(alice_client, flow):
    size = flow.fields.get(key="size")
    response = alice_client.post(
        f"/w/acme/flows/{flow.pk}/fields/{size.pk}/", {"label": "T-shirt size", "required": "on", "choices": "S,M,L,XL"}
    )
    assert response.status_code == 302
    size.refresh_from_db()
    assert (size.label, size.required, size.choices) == ("T-shirt size", True, ["S", "M", "L", "XL"])


def test_field_of_another_flow_is_404(alice_client, flow, workspace_a):
    from tests.factories import make_flow

    other = make_flow(workspace_a, name="Other")
    foreign_field = other.fields.first()
    assert alice_client.get(f"/w/acme/flows/{flow.pk}/fields/{foreign_field.pk}/").status_code == 404


def test_disable_flow(alice_client, flow):
    alice_client.post(
        f"/w/acme/flows/{flow.pk}/",
        {"name": flow.name, "headline": "", "thank_you_message": "Thanks!", "is_enabled": ""},
    )
    flow.refresh_from_db()
    assert flow.is_enabled is False
    assert FlowField.objects.filter(flow=flow).exists()
