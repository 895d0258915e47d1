from __future__ import annotations

from django.conf import settings
from django.db import models

from lib.crypto import EncryptedJSONField
from workspaces.models import Workspace


class Integration(models.Model):
    """One destination of one workspace. Disconnecting drops the credentials and keeps the row
    (and with it the sync history)."""

    class Kind(models.TextChoices):
        ITERABLE = "iterable", "Iterable"
        CUSTOMERIO = "customerio", "Customer.io"

    class Status(models.TextChoices):
        DISCONNECTED = "disconnected", "Not connected"
        CONNECTED = "connected", "Connected"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"

    class AuthMethod(models.TextChoices):
        API_KEY = "api_key", "API key"
        OAUTH = "oauth", "OAuth"

    class ProjectType(models.TextChoices):
        EMAIL = "email", "Email-based"
        USER_ID = "userId", "UserID-based"
        HYBRID = "hybrid", "Hybrid"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="integrations")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DISCONNECTED)
    auth_method = models.CharField(max_length=10, choices=AuthMethod.choices, blank=True)
    # SECURITY: the API key or OAuth tokens, Fernet-encrypted (lib/crypto.py). Never rendered.
    credentials = EncryptedJSONField(null=True, blank=True, editable=False)
    key_last4 = models.CharField(max_length=4, blank=True)
    region = models.CharField(max_length=2, default="us")
    project_type = models.CharField(max_length=10, choices=ProjectType.choices, default=ProjectType.HYBRID)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    connected_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    # Why it needs attention (status NEEDS_ATTENTION): a stable code and words for the admin.
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    error_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "kind"], name="integration_unique_kind")]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.workspace}"

    @property
    def is_connected(self) -> bool:
        return self.status != self.Status.DISCONNECTED and self.credentials is not None

    @property
    def masked_key(self) -> str:
        return f"••••{self.key_last4}" if self.key_last4 else ""
