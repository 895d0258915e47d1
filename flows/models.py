from __future__ import annotations

from django.conf import settings
from django.db import models

from lib.names import validate_name
from lib.tokens import short_id
from workspaces.models import Workspace


class FieldType(models.TextChoices):
    TEXT = "text", "Text"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"
    NUMBER = "number", "Number"
    DATE = "date", "Date"
    BOOLEAN = "boolean", "Yes / no"
    CHOICE = "choice", "Choice"
    # A checkbox the person ticks to agree to something: its exact wording (FlowField.wording) and the
    # time of the answer are kept with each contact (Contact.consents); it can be mapped to a
    # subscription at each destination (integrations: Capability.SUBSCRIPTIONS).
    CONSENT = "consent", "Consent checkbox"


# The types an admin may give a custom field (email and phone are standard fields).
CUSTOM_FIELD_TYPES = [
    FieldType.TEXT,
    FieldType.NUMBER,
    FieldType.DATE,
    FieldType.BOOLEAN,
    FieldType.CHOICE,
    FieldType.CONSENT,
]
# The box's wording when the admin has not written their own.
DEFAULT_CONSENT_WORDING = "I agree to receive marketing email. I can unsubscribe at any time."

# Standard fields: fixed key, label and type, so every flow speaks the same language
# and the destination mapping can suggest targets for them.
STANDARD_FIELDS: dict[str, tuple[str, str]] = {
    "email": ("Email", FieldType.EMAIL),
    "first_name": ("First name", FieldType.TEXT),
    "last_name": ("Last name", FieldType.TEXT),
    "phone": ("Phone", FieldType.PHONE),
    "company": ("Company", FieldType.TEXT),
    "job_title": ("Job title", FieldType.TEXT),
    "country": ("Country", FieldType.TEXT),
    "city": ("City", FieldType.TEXT),
    "postal_code": ("Postal code", FieldType.TEXT),
    "birthday": ("Birthday", FieldType.DATE),
    "marketing_consent": ("Marketing consent", FieldType.CONSENT),
}


def new_public_id() -> str:
    return short_id(8)


class ConversionFlow(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="flows")
    name = models.CharField(max_length=120, validators=[validate_name])
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    is_enabled = models.BooleanField(default=True, help_text="A disabled flow stops accepting submissions.")
    headline = models.CharField(max_length=200, blank=True)
    thank_you_message = models.CharField(max_length=500, default="Thanks! We'll be in touch.")
    # Email double opt-in: a contact is synced only once they click the link Flowsync mails them.
    double_opt_in = models.BooleanField(
        default=False,
        help_text="Mail each new contact a link to confirm their address; sync them only once they do.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class FlowField(models.Model):
    workspace_lookup = "flow__workspace"

    class Kind(models.TextChoices):
        STANDARD = "standard", "Standard"
        CUSTOM = "custom", "Custom"

    flow = models.ForeignKey(ConversionFlow, on_delete=models.CASCADE, related_name="fields")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # The key is what a contact's data and the capture API use; it never changes once
    # contacts exist, so it is not editable after creation.
    key = models.SlugField(max_length=60)
    label = models.CharField(max_length=120, validators=[validate_name])
    field_type = models.CharField(max_length=10, choices=FieldType.choices)
    choices = models.JSONField(default=list, blank=True)
    # A consent field's checkbox text, word for word (stored with each answer; the label names the
    # field in the app). Empty for other types.
    wording = models.TextField(blank=True, max_length=1000)
    required = models.BooleanField(default=False)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["flow", "key"], name="flowfield_unique_key")]

    def __str__(self) -> str:
        return f"{self.flow}: {self.key}"


class Contact(models.Model):
    """One captured submission. Immutable: corrections are new submissions."""

    class Source(models.TextChoices):
        FORM = "form", "Public form"
        API = "api", "Capture API"
        IMPORT = "import", "Import"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="contacts")
    flow = models.ForeignKey(ConversionFlow, on_delete=models.PROTECT, related_name="contacts")
    # Typed values by field key: str, int/float, bool, ISO date string.
    data = models.JSONField(default=dict)
    # Lower-cased, trimmed: the search key and the usual destination identifier.
    email = models.CharField(max_length=254, blank=True)
    # A mobile app's device sent with the contact through the capture API (flows.devices): registered at
    # each destination once the person's upsert succeeds. {"token", "platform", "app_name", "attributes"}.
    device = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.FORM)
    # Each consent field's answer as given: {key: {"given": bool, "wording": the box's text, "at": ISO time}}.
    consents = models.JSONField(null=True, blank=True)
    # Double opt-in (ConversionFlow.double_opt_in): the hash of the confirmation link's token while the
    # contact waits, the time the mail was queued (None: not sent, over the per-address budget) and the
    # time they confirmed. A contact waiting to confirm is in no outbox.
    confirm_token_hash = models.CharField(max_length=64, null=True, blank=True)
    confirm_sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # Newest-first listing and its keyset cursor.
            models.Index(fields=["workspace", "-created_at", "-id"], name="contact_ws_newest"),
            models.Index(fields=["workspace", "email"], name="contact_ws_email"),
            # Support searches one email across every workspace (Django admin); pattern ops
            # so that a prefix search can use it too, whatever the database collation.
            models.Index(fields=["email"], name="contact_email", opclasses=["varchar_pattern_ops"]),
            # The confirmation link's lookup. Partial: the capture hot path writes no entry for the
            # contacts of flows without double opt-in (the token is 32 random bytes: no two alike).
            models.Index(
                fields=["confirm_token_hash"],
                name="contact_confirm_token",
                condition=models.Q(confirm_token_hash__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.email or f"contact {self.pk}"

    @property
    def awaiting_confirmation(self) -> bool:
        return self.confirm_token_hash is not None and self.confirmed_at is None


class CaptureToken(models.Model):
    """A workspace's key for the capture API. Only its hash is stored."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="capture_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)  # shown in the UI to tell tokens apart
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.workspace})"
