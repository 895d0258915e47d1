"""Where a workspace's alerts go besides email: Slack incoming webhooks and signed generic webhooks.

A channel's address and signing secret are credentials (a Slack webhook URL lets anyone post to the
channel): stored encrypted like an integration's keys, shown only as a hint. Each alert becomes one
delivery per channel, sent by a worker with retries (alert_channels.services.delivery_attempt).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from lib.crypto import EncryptedJSONField
from workspaces.models import Workspace


class AlertChannel(models.Model):
    class Kind(models.TextChoices):
        SLACK = "slack", "Slack"
        WEBHOOK = "webhook", "Webhook"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="alert_channels")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=80)
    # {"url": ..., "signing_secret": ... (webhooks)}: never shown, never logged.
    secrets = EncryptedJSONField()
    address_hint = models.CharField(max_length=120)  # "hooks.slack.com/…/x7Qa": enough to tell two apart
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # The last delivery's outcome, for the settings page (denormalised: no query over deliveries per row).
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name} ({self.workspace})"

    @property
    def url(self) -> str:
        return (self.secrets or {}).get("url", "")

    @property
    def signing_secret(self) -> str:
        return (self.secrets or {}).get("signing_secret", "")


class AlertDelivery(models.Model):
    """One alert to one channel: pending until a worker sends it, delivered, or failed for good."""

    workspace_lookup = "channel__workspace"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    # Sent as the delivery's id: a receiver that sees it twice (a retry after a lost answer) can tell.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=40)  # "integration.alert", "test"
    subject = models.CharField(max_length=200)
    message = models.TextField()
    link = models.URLField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Pending: when it is due. Sending: until when the worker holding it may (then it is due again).
    due_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The sweep for deliveries whose task was lost (a broker restart): few rows are ever unfinished.
            models.Index(
                fields=["due_at"], condition=models.Q(status__in=["pending", "sending"]), name="alert_delivery_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.channel}: {self.status}"
