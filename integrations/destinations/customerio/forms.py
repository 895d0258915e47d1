"""Customer.io's connect form: the Track API pair, how the workspace identifies people, and the
optional App API key that lets a sync leave existing people unchanged."""

from __future__ import annotations

from django import forms

from integrations.destinations.customerio.rules import IDENTIFY_BY

_SECRET = {"autocomplete": "off", "spellcheck": "false"}
# Keys refused stay in their fields (render_value): the admin's own input, on a page never cached.


class ConnectForm(forms.Form):
    site_id = forms.CharField(
        label="Site ID",
        max_length=100,
        strip=True,
        widget=forms.TextInput(attrs=_SECRET),
        help_text="In Customer.io: Settings > Workspace Settings > API and webhook credentials, Track API keys.",
    )
    api_key = forms.CharField(
        label="Track API key",
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(attrs=_SECRET, render_value=True),
        help_text="The API key next to that Site ID.",
    )
    identify_by = forms.ChoiceField(
        label="People are identified by",
        choices=list(IDENTIFY_BY.items()),
        initial="id",
        help_text="What the workspace identifies people by (Workspace Settings > Identifiers). Records without it "
        "are not sent.",
    )
    app_api_key = forms.CharField(
        label="App API key (optional)",
        max_length=200,
        required=False,
        strip=True,
        widget=forms.PasswordInput(attrs=_SECRET, render_value=True),
        help_text="Only needed to leave existing people unchanged: Flowsync looks them up with it. Create one "
        "under API Credentials > App API Keys, for this workspace.",
    )
