from __future__ import annotations

from django import forms

from integrations.models import Integration

REGION_CHOICES = [("auto", "Detect automatically"), ("us", "US (api.iterable.com)"), ("eu", "EU (api.eu.iterable.com)")]


class ConnectKeyForm(forms.Form):
    api_key = forms.CharField(
        label="API key",
        max_length=200,
        strip=True,  # whitespace pasted around the key is dropped
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false", "id": "api-key"}),
        help_text="A server-side key: in Iterable, Integrations > API Keys > New API key, type Server-side.",
    )
    region = forms.ChoiceField(label="Data center", choices=REGION_CHOICES, initial="auto")
    project_type = forms.ChoiceField(
        label="Project type",
        choices=Integration.ProjectType.choices,
        initial=Integration.ProjectType.HYBRID,
        help_text="Iterable shows it under Settings > Project settings. It decides how users are identified.",
    )


class OAuthStartForm(forms.Form):
    project_type = forms.ChoiceField(choices=Integration.ProjectType.choices, initial=Integration.ProjectType.HYBRID)

    def __init__(self, *args, **kwargs) -> None:
        # Shown on the same page as the key form, which has a project_type too: ids must differ.
        kwargs.setdefault("auto_id", "oauth-%s")
        super().__init__(*args, **kwargs)


class SyncSettingsForm(forms.Form):
    def __init__(self, *args: object, lists: list[dict] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.list_names = {int(item["id"]): str(item.get("name", "")) for item in lists or []}
        self.fields["list_id"].choices = [("", "No list")] + [
            (list_id, name) for list_id, name in sorted(self.list_names.items(), key=lambda kv: kv[1].lower())
        ]

    frequency = forms.TypedChoiceField(
        label="Sync frequency", choices=Integration.Frequency.choices, coerce=int, initial=Integration.Frequency.HOURLY
    )
    overwrite_existing = forms.TypedChoiceField(
        label="When a user already exists in Iterable",
        choices=[("1", "Update existing users with the mapped fields"), ("0", "Leave existing users unchanged")],
        coerce=lambda v: v == "1",
        initial="1",
        widget=forms.RadioSelect,
    )
    list_id = forms.TypedChoiceField(
        label="Also add synced users to an Iterable list", required=False, coerce=int, empty_value=None, choices=[]
    )
    event_name = forms.CharField(
        label="Also track an event per contact",
        required=False,
        max_length=100,
        help_text="An event name such as formSubmitted, with the flow's name in its data. Empty: no event.",
    )
    backfill = forms.BooleanField(
        label="Also sync the contacts captured before today",
        required=False,
        help_text="Otherwise only contacts captured from now on are synced.",
    )
