"""The sync settings step, the same for every destination: what differs is what it can do
(Capability.LISTS, Capability.EVENTS, Capability.LOOKUP) and its name."""

from __future__ import annotations

from django import forms

from integrations.destinations.base import Capability, Destination
from integrations.models import Integration

UNTICKED_CHOICES = [
    ("leave", "Leave their subscriptions as they are"),
    ("unsubscribe", "Unsubscribe them (they said no on this form)"),
]


class SyncSettingsForm(forms.Form):
    def __init__(
        self,
        *args: object,
        lists: list[dict] | None = None,
        destination: type[Destination],
        config: dict | None = None,
        consent_fields: list[tuple[str, str]] | None = None,
        targets: list[dict] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        config = config or {}
        label = destination.label
        self.consent_note = ""
        self.target_names = {str(t["id"]): str(t["name"]) for t in targets or []}
        self.consent_keys = []
        if consent_fields and destination.supports(Capability.SUBSCRIPTIONS, config):
            saved = config.get("consent") or {}
            for key, field_label in consent_fields:
                rule = saved.get(key) or {}
                self.consent_keys.append(key)
                self.fields[f"consent__{key}"] = forms.ChoiceField(
                    label=f"When “{field_label}” is ticked, subscribe them in {label} to",
                    required=False,
                    choices=[
                        ("", "Nothing (only send the answer as a field, if mapped)"),
                        *sorted(self.target_names.items(), key=lambda kv: kv[1].lower()),
                    ],
                    initial=rule.get("target", ""),
                )
                self.fields[f"unticked__{key}"] = forms.ChoiceField(
                    label=f"When “{field_label}” is left unticked",
                    choices=UNTICKED_CHOICES,
                    initial=rule.get("unticked", "leave"),
                    widget=forms.RadioSelect,
                    help_text="A person who never ticked it is never subscribed.",
                )
        elif consent_fields:
            self.consent_note = destination.unsupported_reason(Capability.SUBSCRIPTIONS, config)
        self.list_names = {int(item["id"]): str(item.get("name", "")) for item in lists or []}
        self.fields["overwrite_existing"].label = f"When a person already exists in {label}"
        if destination.supports(Capability.LISTS, config):
            self.fields["list_id"].label = f"Also add synced people to a {label} list"
            self.fields["list_id"].choices = [("", "No list")] + [
                (list_id, name) for list_id, name in sorted(self.list_names.items(), key=lambda kv: kv[1].lower())
            ]
        else:
            del self.fields["list_id"]
        if not destination.supports(Capability.EVENTS, config):
            del self.fields["event_name"]
        if not destination.supports(Capability.LOOKUP, config):
            # Nothing can tell whether a person exists: every sync updates them.
            self.fields["overwrite_existing"].choices = [("1", "Update existing people with the mapped fields")]
            self.fields["overwrite_existing"].help_text = destination.unsupported_reason(Capability.LOOKUP, config)

    frequency = forms.TypedChoiceField(
        label="Sync frequency", choices=Integration.Frequency.choices, coerce=int, initial=Integration.Frequency.HOURLY
    )
    overwrite_existing = forms.TypedChoiceField(
        label="When a person already exists",
        choices=[("1", "Update existing people with the mapped fields"), ("0", "Leave existing people unchanged")],
        coerce=lambda v: v == "1",
        initial="1",
        widget=forms.RadioSelect,
    )
    list_id = forms.TypedChoiceField(
        label="Also add synced people to a list",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[],
        help_text=(
            "Everyone synced joins it, whatever they answered. To add only people who agreed, give your flows "
            "a consent field and map it on this page."
        ),
    )
    event_name = forms.CharField(
        label="Also track an event per contact",
        required=False,
        max_length=100,
        help_text="An event name such as formSubmitted, with the flow's name in its data. Empty: no event.",
    )

    def consent_rules(self) -> dict[str, dict[str, str]]:
        """The consent mapping chosen: field key -> {"target", "name", "unticked"} (a field subscribing
        to nothing is left out)."""
        rules = {}
        for key in self.consent_keys:
            target = self.cleaned_data.get(f"consent__{key}") or ""
            if target:
                rules[key] = {
                    "target": target,
                    "name": self.target_names.get(target, target),
                    "unticked": self.cleaned_data.get(f"unticked__{key}") or "leave",
                }
        return rules

    backfill = forms.BooleanField(
        label="Also sync the contacts captured before today",
        required=False,
        help_text="Otherwise only contacts captured from now on are synced.",
    )
