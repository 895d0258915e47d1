"""flows' 0005 turns the standard marketing-consent box (a yes/no field whose label was its wording) into a
consent field that keeps that wording word for word, and back."""

from __future__ import annotations

import pytest

from tests.migrating import migrate_to, migrate_to_latest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("flows", "0004_contact_device")]


def test_the_marketing_consent_box_keeps_its_words_as_a_consent_field():
    try:
        apps = migrate_to(BEFORE)
        Workspace, Flow, Field = (apps.get_model(*name.split(".")) for name in
                                  ("workspaces.Workspace", "flows.ConversionFlow", "flows.FlowField"))  # fmt: skip
        flow = Flow.objects.create(workspace=Workspace.objects.create(name="W", slug="w"), name="F", public_id="p1")
        Field.objects.create(flow=flow, kind="standard", key="marketing_consent", label="Send me offers",
                             field_type="boolean")  # fmt: skip
        Field.objects.create(flow=flow, kind="custom", key="vip", label="VIP", field_type="boolean")
        apps = migrate_to([("flows", "0005_consent_double_opt_in")])
        Field = apps.get_model("flows", "FlowField")
        consent = Field.objects.get(key="marketing_consent")
        assert (consent.field_type, consent.wording, consent.label) == (
            "consent",
            "Send me offers",
            "Marketing consent",
        )
        assert Field.objects.get(key="vip").field_type == "boolean"  # a yes/no field of the admin's own stays one

        apps = migrate_to(BEFORE)
        back = apps.get_model("flows", "FlowField").objects.get(key="marketing_consent")
        assert (back.field_type, back.label) == ("boolean", "Send me offers")
    finally:
        migrate_to_latest()
