from __future__ import annotations

from django import forms
from django.conf import settings

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
    double_opt_in = forms.BooleanField(
        required=False,
        label="Ask new contacts to confirm their email address (double opt-in)",
    )

    @classmethod
    def for_flow(cls, flow: ConversionFlow, data: object = None) -> FlowSettingsForm:
        fields = ("name", "headline", "thank_you_message", "is_enabled", "double_opt_in")
        form = cls(data, initial={name: getattr(flow, name) for name in fields})
        form.fields["double_opt_in"].help_text = (
            "Each new contact gets an email with a link and is synced only once they open it and confirm. "
            f"Links work for {settings.DOUBLE_OPT_IN_LINK_HOURS} hours."
        )
        return form


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
    wording = forms.CharField(required=False, max_length=1000)
    required = forms.BooleanField(required=False)


_WORDING_HELP = (
    "The checkbox's text, word for word: each answer keeps the wording it was given to. "
    "Say what people agree to and how to withdraw."
)


class FieldEditForm(forms.Form):
    label = forms.CharField(max_length=120, validators=[validate_name])
    required = forms.BooleanField(required=False)
    choices = forms.CharField(required=False, help_text="Options, comma-separated.")
    wording = forms.CharField(
        required=False,
        max_length=1000,
        label="Checkbox wording",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_WORDING_HELP,
    )

    @classmethod
    def for_field(cls, field: FlowField, data: object = None) -> FieldEditForm:
        initial = {
            "label": field.label,
            "required": field.required,
            "choices": ", ".join(field.choices),
            "wording": field.wording,
        }
        form = cls(data, initial=initial)
        if field.field_type != FieldType.CHOICE:
            del form.fields["choices"]
        if field.field_type != FieldType.CONSENT:
            del form.fields["wording"]
        return form


class ContactSearchForm(forms.Form):
    # The labels name the parameter in the error shown above the (empty) list.
    q = forms.CharField(required=False, max_length=254, label="Search")
    flow = forms.CharField(required=False, max_length=32, label="Flow")
    cursor = forms.CharField(required=False, max_length=200, label="Page")
