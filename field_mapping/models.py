from __future__ import annotations

from django.db import models

from integrations.models import Integration


class DestinationSchema(models.Model):
    """The destination's fields as last fetched (Destination.fetch_fields), or the attributes a
    destination without a schema was sent before.

    A failed fetch keeps the last good copy and records why it failed.
    """

    integration = models.OneToOneField(Integration, on_delete=models.CASCADE, related_name="schema")
    fields = models.JSONField(default=dict)  # {"firstName": "string", "address.city": "string", ...}
    fetched_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    workspace_lookup = "integration__workspace"

    def __str__(self) -> str:
        return f"schema of {self.integration}"


class FieldMapping(models.Model):
    """Where one form field (by key, across every flow of the workspace) goes in the destination."""

    workspace_lookup = "integration__workspace"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="mappings")
    source_key = models.CharField(max_length=60)
    # Empty target: "don't sync".
    target = models.CharField(max_length=255, blank=True)
    # The destination type the target had (or will get, for a new field) when the mapping was saved:
    # a different type in the schema later is drift.
    target_type = models.CharField(max_length=20, blank=True)
    create_new = models.BooleanField(default=False)
    send_empty = models.BooleanField(default=False)
    # Order among sources that share a target: the first non-empty value wins.
    position = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["integration", "source_key"], name="fieldmapping_unique_source")]

    def __str__(self) -> str:
        return f"{self.source_key} → {self.target or '(not synced)'}"
