from __future__ import annotations

from django import forms


class ErasureForm(forms.Form):
    email = forms.EmailField(label="Email of the person to erase", max_length=254)
    forget = forms.BooleanField(
        label="Also keep the destinations from collecting data about them again",
        required=False,
        help_text="Where a destination offers it (a forget, a suppression: some allow only so many a day). "
        "Without it the person is deleted, and a new capture may add them back.",
    )
    confirm = forms.BooleanField(label="I understand this cannot be undone", required=True)
