"""Names (workspace, flow, field, user) are one line of visible text: one rule, in forms and services."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from accounts.models import User
from accounts.services import user_signup
from flows.models import ConversionFlow, FieldType, FlowField
from flows.services import flow_create, flow_field_add, flow_field_update, flow_update
from lib.names import validate_name
from tests.factories import make_flow
from workspaces.models import Workspace
from workspaces.services import workspace_create, workspace_rename

REFUSED = {
    "line feed": "Acme\nBcc: victim@example.com",
    "carriage return": "Acme\r",
    "tab": "Ac\tme",
    "NUL": "Ac\x00me",
    "escape": "Ac\x1b[31mme",
    "DEL": "Acme\x7f",
    "C1 next line": "Acme\x85",
    "line separator": "Acme\u2028",
    "paragraph separator": "Acme\u2029",
    "right-to-left override": "Acme\u202egnp.exe",
    "right-to-left isolate": "\u2067Acme",
    "lone surrogate": "Acme\ud800",
}
ACCEPTED = ["Acme Marketing", "Café Ünïcode & Co.", "日本語チーム", "👩\u200d💻 Devs", "کار\u200cها", "O'Brien (EU)"]
BAD = REFUSED["line feed"]


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
def test_control_characters_are_refused(value):
    with pytest.raises(ValidationError, match="no line breaks, tabs or other control characters"):
        validate_name(value)


@pytest.mark.parametrize("value", ACCEPTED)
def test_names_in_any_script_pass(value):
    validate_name(value)  # joiners (emoji, Persian) are Cf too, but only the bidi controls are refused


# --- The forms, through the views -------------------------------------------------------------------


@pytest.mark.django_db
def test_workspace_create_and_rename_refuse_them(alice_client, workspace_a):
    response = alice_client.post("/new/", {"name": BAD})
    assert response.status_code == 200 and "control characters" in response.content.decode()
    response = alice_client.post(f"/w/{workspace_a.slug}/settings/", {"name": BAD})
    assert "control characters" in response.content.decode()
    assert list(Workspace.objects.values_list("name", flat=True)) == ["Acme"]


@pytest.mark.django_db
def test_flow_and_field_forms_refuse_them(alice_client, workspace_a):
    base = f"/w/{workspace_a.slug}/flows/"
    assert "control characters" in alice_client.post(base + "new/", {"name": BAD}).content.decode()
    flow = make_flow(workspace_a)
    settings_post = {"name": BAD, "thank_you_message": "Thanks", "is_enabled": "on"}
    assert "control characters" in alice_client.post(f"{base}{flow.pk}/", settings_post).content.decode()
    alice_client.post(
        f"{base}{flow.pk}/fields/add/", {"kind": "custom", "label": BAD, "key": "shoe", "field_type": FieldType.TEXT}
    )
    field = flow.fields.get(key="first_name")
    edit = alice_client.post(f"{base}{flow.pk}/fields/{field.pk}/", {"label": BAD})
    assert "control characters" in edit.content.decode()
    assert list(ConversionFlow.objects.values_list("name", flat=True)) == ["Signup"]
    assert not FlowField.objects.filter(key="shoe").exists()
    assert set(flow.fields.values_list("label", flat=True)) == {"Email", "First name"}


@pytest.mark.django_db
def test_signup_refuses_them(client):
    response = client.post(
        "/accounts/signup/", {"name": BAD, "email": "new@example.com", "password": "a-long-passphrase"}
    )
    assert "control characters" in response.content.decode()
    assert not User.objects.filter(email="new@example.com").exists()


# --- The services, for every caller that skips a form -----------------------------------------------


@pytest.mark.django_db
def test_the_services_refuse_them_too(alice, workspace_a):
    flow = make_flow(workspace_a)
    field = flow.fields.get(key="first_name")
    calls = {
        "name": [
            lambda: workspace_create(name=BAD, owner=alice),
            lambda: workspace_rename(workspace=workspace_a, name=BAD, actor=alice),
            lambda: flow_create(workspace=workspace_a, name=BAD, actor=alice),
            lambda: flow_update(flow=flow, actor=alice, name=BAD),
            lambda: user_signup(email="new@example.com", password="a-long-passphrase", name=BAD),
            lambda: user_signup(email=alice.email, password="a-long-passphrase", name=BAD),
        ],
        "label": [
            lambda: flow_field_add(flow=flow, kind="custom", key="shoe", label=BAD, field_type="text", actor=alice),
            lambda: flow_field_update(field=field, label=BAD, required=False, choices=None, actor=alice),
        ],
    }
    for key, refused in calls.items():
        for call in refused:
            with pytest.raises(ValidationError) as caught:
                call()
            assert "control characters" in " ".join(caught.value.message_dict[key])
    workspace_a.refresh_from_db()
    flow.refresh_from_db()
    field.refresh_from_db()
    assert (workspace_a.name, flow.name, field.label) == ("Acme", "Signup", "First name")


# --- The model fields: what skips both (Django's admin, any ModelForm) -----------------------------


@pytest.mark.django_db
def test_admin_edits_refuse_them(alice, workspace_a, rf):
    """Django's admin builds its forms from the models: without the validator on the model field, a
    support edit stored a name with a line break (the next invitation split its mail header)."""
    from django.contrib import admin

    from flows.admin import FlowFieldInline

    flow = make_flow(workspace_a)
    field = flow.fields.first()
    request = rf.post("/")
    request.user = User.objects.create_superuser(email="support@flowsync.test", password="x")

    def admin_form(model, instance, **changes):
        form_class = admin.site._registry[model].get_form(request, instance, change=True)
        initial = form_class(instance=instance).initial
        data = {key: value for key, value in initial.items() if value is not None and not isinstance(value, list)}
        return form_class(data={**data, **changes}, instance=instance)

    for model, instance, name_field in (
        (Workspace, workspace_a, "name"),
        (ConversionFlow, flow, "name"),
        (User, alice, "name"),
    ):
        form = admin_form(model, instance, **{name_field: BAD})
        assert not form.is_valid() and "control characters" in str(form.errors[name_field]), model
    inline_form = FlowFieldInline(ConversionFlow, admin.site).get_formset(request, flow).form
    form = inline_form(
        data={
            "label": BAD,
            "key": field.key,
            "kind": field.kind,
            "field_type": field.field_type,
            "position": 0,
            "choices": "[]",
        },
        instance=field,
    )
    assert not form.is_valid() and "control characters" in str(form.errors["label"])
    for model, attr in ((Workspace, "name"), (ConversionFlow, "name"), (FlowField, "label"), (User, "name")):
        assert validate_name in model._meta.get_field(attr).validators, model
