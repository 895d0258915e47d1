from __future__ import annotations

from django import forms

from alert_channels.models import AlertChannel
from alert_channels.transports import TRANSPORTS


class ChannelForm(forms.Form):
    kind = forms.ChoiceField(label="Send to", choices=AlertChannel.Kind.choices)
    name = forms.CharField(
        label="Name", max_length=80, help_text="How you will recognise it, e.g. #marketing-alerts or Ops pager."
    )
    # A Slack webhook URL is a credential: not echoed back into the page after a refused submit.
    url = forms.URLField(
        label="URL",
        max_length=500,
        assume_scheme="https",
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text=" ".join(t.url_help for t in TRANSPORTS.values()),
    )
