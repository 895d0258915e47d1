"""Erasure requests ("erase this person"): what was asked and what was done, without the person.

The request keeps who asked, when, how, and counts; never the email. Each destination the
workspace syncs to gets one step that asks it to delete (or forget) the person, retried until done;
a step holds the person's identifiers there, encrypted, only until it is done. The contact ids are
kept (numbers that name nobody once the contacts are gone) so that a log row a sync was writing
while the person was erased is scrubbed too (erasure.services).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from lib.crypto import EncryptedJSONField
from workspaces.models import Workspace


class ErasureRequest(models.Model):
    class Via(models.TextChoices):
        APP = "app", "App"
        ADMIN = "admin", "Support (Django admin)"
        API = "api", "Capture API"

    class Mode(models.TextChoices):
        DELETE = "delete", "Delete"
        # Deleted, and never collected again where the destination offers it (Destination.erase's forget).
        FORGET = "forget", "Delete and never collect again"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="erasure_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    via = models.CharField(max_length=10, choices=Via.choices)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.DELETE)
    created_at = models.DateTimeField(auto_now_add=True)
    contacts_erased = models.PositiveIntegerField(default=0)
    log_rows_scrubbed = models.PositiveIntegerField(default=0)
    outbox_rows_removed = models.PositiveIntegerField(default=0)
    contact_ids = models.JSONField(default=list)
    completed_at = models.DateTimeField(null=True, blank=True)  # every destination step done

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"erasure #{self.pk} in {self.workspace}"


class ErasureStep(models.Model):
    """Asking one destination to delete the person: pending until a worker has it done."""

    workspace_lookup = "request__workspace"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        SENDING = "sending", "Sending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    request = models.ForeignKey(ErasureRequest, on_delete=models.CASCADE, related_name="steps")
    integration = models.ForeignKey(
        "integrations.Integration", null=True, blank=True, on_delete=models.SET_NULL, related_name="erasure_steps"
    )
    destination_label = models.CharField(max_length=60)  # kept when the integration is removed
    # {"people": [{<identifier name>: <value>, ...}, ...]}: the identifiers the destination knows them by.
    # Emptied once the step is done.
    identifiers = EncryptedJSONField(null=True, blank=True)
    people = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField()  # pending: when due; sending: the worker's lease
    last_error = models.TextField(blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["due_at"], condition=models.Q(status__in=["pending", "sending"]), name="erasure_step_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.destination_label} for {self.request}: {self.status}"
