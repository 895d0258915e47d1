from __future__ import annotations

from django import forms

from flows.models import CUSTOM_FIELD_TYPES, STANDARD_FIELDS, ConversionFlow, FieldType, FlowField
from lib.names import validate_name


class FlowCreateForm(forms.Form):
    name = forms.CharField(
        max_length=120,
        label="Flow name",
        widget=forms.TextInput(attrs={"autofocus": True}),
        validators=[validate_name],
    )


class FlowSettingsForm(forms.Form):
    # A plain Form, not a ModelForm: validating must not change the flow in memory,
    # so that flow_update() sees (and audits) what really changed.
    name = forms.CharField(max_length=120, validators=[validate_name])
    headline = forms.CharField(max_length=200, required=False, label="Headline shown above the form")
    thank_you_message = forms.CharField(max_length=500)
    is_enabled = forms.BooleanField(required=False, label="Accepting submissions")

    @classmethod
    def for_flow(cls, flow: ConversionFlow, data: object = None) -> FlowSettingsForm:
        fields = ("name", "headline", "thank_you_message", "is_enabled")
        return cls(data, initial={name: getattr(flow, name) for name in fields})


class StandardFieldForm(forms.Form):
    key = forms.ChoiceField(label="Standard field")
    required = forms.BooleanField(required=False)

    def __init__(self, *args: object, flow: ConversionFlow, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        used = set(flow.fields.values_list("key", flat=True))
        self.fields["key"].choices = [(k, label) for k, (label, _) in STANDARD_FIELDS.items() if k not in used]


class CustomFieldForm(forms.Form):
    label = forms.CharField(max_length=120, validators=[validate_name])
    key = forms.CharField(max_length=60, help_text="Lower-case letters, digits and _ (e.g. shoe_size).")
    field_type = forms.ChoiceField(
        choices=[(t.value, t.label) for t in CUSTOM_FIELD_TYPES],
        label="Type",
        widget=forms.Select(attrs={"id": "cf-type"}),
    )
    choices = forms.CharField(required=False, help_text="For a choice field: the options, comma-separated.")
    required = forms.BooleanField(required=False)


class FieldEditForm(forms.Form):
    label = forms.CharField(max_length=120, validators=[validate_name])
    required = forms.BooleanField(required=False)
    choices = forms.CharField(required=False, help_text="Options, comma-separated.")

    @classmethod
    def for_field(cls, field: FlowField, data: object = None) -> FieldEditForm:
        form = cls(
            data, initial={"label": field.label, "required": field.required, "choices": ", ".join(field.choices)}
        )
        if field.field_type != FieldType.CHOICE:
            del form.fields["choices"]
        return form


class ContactSearchForm(forms.Form):
    # The labels name the parameter in the error shown above the (empty) list.
    q = forms.CharField(required=False, max_length=254, label="Search")
    flow = forms.CharField(required=False, max_length=32, label="Flow")
    cursor = forms.CharField(required=False, max_length=200, label="Page")
