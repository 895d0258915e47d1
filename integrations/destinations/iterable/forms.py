"""Iterable's connect forms: a pasted key, or the start of an OAuth sign-in."""

from __future__ import annotations

from django import forms

from integrations.destinations.iterable.rules import PROJECT_TYPES

REGION_CHOICES = [("auto", "Detect automatically"), ("us", "US (api.iterable.com)"), ("eu", "EU (api.eu.iterable.com)")]
PROJECT_TYPE_CHOICES = list(PROJECT_TYPES.items())


class ConnectKeyForm(forms.Form):
    api_key = forms.CharField(
        label="API key",
        max_length=200,
        strip=True,  # whitespace pasted around the key is dropped
        # A refused key stays in its field (the admin fixes the data center, not the paste); it is only
        # ever the admin's own input sent back to them, on a page that is never cached (views.integration_connect).
        widget=forms.PasswordInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "id": "api-key"}, render_value=True
        ),
        help_text="A server-side key: in Iterable, Integrations > API Keys > New API key, type Server-side.",
    )
    region = forms.ChoiceField(label="Data center", choices=REGION_CHOICES, initial="auto")
    project_type = forms.ChoiceField(
        label="Project type",
        choices=PROJECT_TYPE_CHOICES,
        initial="hybrid",
        help_text="Iterable shows it under Settings > Project settings. It decides how users are identified.",
    )


class OAuthStartForm(forms.Form):
    project_type = forms.ChoiceField(choices=PROJECT_TYPE_CHOICES, initial="hybrid")

    def __init__(self, *args, **kwargs) -> None:
        # Shown on the same page as the key form, which has a project_type too: ids must differ.
        kwargs.setdefault("auto_id", "oauth-%s")
        super().__init__(*args, **kwargs)
