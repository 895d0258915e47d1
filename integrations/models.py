from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from integrations.destinations import REGISTRY  # by dotted path: it imports no package at import time
from lib.crypto import EncryptedJSONField
from workspaces.models import Workspace

# The keys of an integration's config that the sync settings step owns (not its connection): they
# survive a reconnect. "consent": form field key -> {"target", "name", "unticked"} (integrations.engine).
SYNC_EXTRAS = ("list_id", "list_name", "event_name", "consent")


class Integration(models.Model):
    """One destination of one workspace. Disconnecting drops the credentials and keeps the row
    (and with it the sync history)."""

    class Status(models.TextChoices):
        DISCONNECTED = "disconnected", "Not connected"
        CONNECTED = "connected", "Connected"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"

    class AuthMethod(models.TextChoices):
        API_KEY = "api_key", "API key"
        OAUTH = "oauth", "OAuth"

    class Frequency(models.IntegerChoices):
        MANUAL = 0, "Manual only"
        EVERY_15_MIN = 15, "Every 15 minutes"
        EVERY_30_MIN = 30, "Every 30 minutes"
        HOURLY = 60, "Every hour"
        EVERY_6_HOURS = 360, "Every 6 hours"
        EVERY_12_HOURS = 720, "Every 12 hours"
        DAILY = 1440, "Every 24 hours"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="integrations")
    kind = models.CharField(max_length=20)  # a kind of the destinations' registry
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DISCONNECTED)
    auth_method = models.CharField(max_length=10, choices=AuthMethod.choices, blank=True)
    # SECURITY: the API key or OAuth tokens, Fernet-encrypted (lib/crypto.py). Never rendered.
    credentials = EncryptedJSONField(null=True, blank=True, editable=False)
    key_last4 = models.CharField(max_length=4, blank=True)
    # What the destination itself needs to know (its data center, project type, workspace id...),
    # and the optional extras (SYNC_EXTRAS: list_id and list_name, event_name, the consent mapping):
    # validated by its package (Destination.validate_config), never read by shared code but for the extras.
    config = models.JSONField(default=dict, blank=True)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    connected_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    # Why it needs attention (status NEEDS_ATTENTION): a stable code and words for the admin.
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    error_since = models.DateTimeField(null=True, blank=True)
    # Sync settings (wizard step 3).
    frequency = models.PositiveIntegerField(choices=Frequency.choices, default=Frequency.MANUAL)
    overwrite_existing = models.BooleanField(
        default=True, help_text="Update users that already exist; off: leave them unchanged (looked up first)."
    )
    paused_at = models.DateTimeField(null=True, blank=True)
    # When the sync settings (wizard step 3) were first saved: the setup's last step is done.
    sync_configured_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "kind"], name="integration_unique_kind")]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.workspace}"

    def get_kind_display(self) -> str:
        destination = REGISTRY.get(self.kind)
        return destination.label if destination is not None else self.kind

    @property
    def destination_summary(self) -> str:
        """Where it sends, in its destination's words (its data center, project type, workspace...)."""
        destination = REGISTRY.get(self.kind)
        return destination.describe_config(self.config or {}) if destination is not None else ""

    @property
    def is_connected(self) -> bool:
        return self.status != self.Status.DISCONNECTED and self.credentials is not None

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    # The optional extras, off by default: subscribe synced people to a list; track an event per contact.
    def _set_extra(self, name: str, value: object) -> None:
        self.config = {k: v for k, v in (self.config or {}).items() if k != name}
        if value:
            self.config[name] = value

    @property
    def list_id(self) -> int | None:
        return (self.config or {}).get("list_id")

    @list_id.setter
    def list_id(self, value: int | None) -> None:
        self._set_extra("list_id", value)

    @property
    def list_name(self) -> str:
        return (self.config or {}).get("list_name", "")

    @list_name.setter
    def list_name(self, value: str) -> None:
        self._set_extra("list_name", value)

    @property
    def event_name(self) -> str:
        return (self.config or {}).get("event_name", "")

    @event_name.setter
    def event_name(self, value: str) -> None:
        self._set_extra("event_name", value)

    @property
    def masked_key(self) -> str:
        return f"••••{self.key_last4}" if self.key_last4 else ""


class OutboxItem(models.Model):
    """One contact waiting for (or done with) one integration: the engine's ledger.

    Rows are created in the transaction that stores the contact, claimed by a run with
    SELECT ... FOR UPDATE SKIP LOCKED, and end delivered, skipped or failed, each
    with its reason. A row whose run died goes back to pending (sync_logs.ledger.sync_runs_reap).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_FLIGHT = "in_flight", "Being sent"
        DELIVERED = "delivered", "Delivered"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    workspace_lookup = "integration__workspace"

    # No index of its own: outbox_unique_contact starts with integration (one index less to write per update).
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="outbox", db_index=False)
    # None for a command row (``command``): a request for the destination that is not a contact's upsert.
    contact = models.ForeignKey("flows.Contact", null=True, on_delete=models.CASCADE, related_name="outbox")
    # A command carried by the queue like a contact, claimed, retried and logged per row the same way:
    # {"op": "device_disable", "token": ..., "identifiers": {"email": ...}} (integrations.engine.commands_carry_out).
    command = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(auto_now_add=True)
    # The run holding the row in flight (kept after, as the run that delivered or failed it). Its only
    # index is outbox_in_flight, below.
    run = models.ForeignKey(
        "sync_logs.SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Sent before (it waits out a retry backoff, or Retry queued it again): a later capture of the
    # same person may have been delivered meanwhile, so the engine checks before sending it again.
    # db_default: rows inserted by the previous release during a deploy get it too.
    sent_before = models.BooleanField(default=False, db_default=False)
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["integration", "contact"], name="outbox_unique_contact")]
        indexes = [
            # The claim query (engine.claim_batch) walks pending rows of one integration in id order
            # and stops after a batch; next_attempt_at is a filter on that walk (most pending rows are
            # due). An index led by next_attempt_at would make every claim sort all pending rows.
            # Partial: a row leaves it when claimed, and the two updates of a sync (claim, outcome)
            # then write no entry to it; it stays the size of the queue, not of the history.
            models.Index(fields=["integration", "id"], condition=Q(status="pending"), name="outbox_pending"),
            # Failed rows of one integration (retry, the admin's counts): few, and a row enters it
            # only when it fails, so syncing writes almost nothing to it.
            models.Index(fields=["integration", "id"], condition=Q(status="failed"), name="outbox_failed"),
            # Pending rows waiting for a retry (the health panel's "to be tried again", polled while a sync
            # runs): a filter on outbox_pending would read every pending row of a big backlog to find them.
            # A row enters it only when it fails retryably, so a sync writes almost nothing to it.
            models.Index(
                fields=["integration", "id"], condition=Q(status="pending", attempts__gt=0), name="outbox_retrying"
            ),
            # A run's rows in flight (its outcomes' updates, a stopped run's release, the reaper). Partial:
            # a full run index grew with every row the run had finished, and PostgreSQL chose it for the
            # outcome update, each batch's update then reading the whole run so far (quadratic in the
            # run); and each outcome update wrote it one entry more.
            models.Index(fields=["run"], condition=Q(status="in_flight"), name="outbox_in_flight"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} → {self.integration_id} ({self.status})"


class AlertState(models.Model):
    """Alerting for one integration: the admin's threshold, when the last email went, and the open alert
    the in-app banner shows (cleared by the next clean run or by an admin)."""

    workspace_lookup = "integration__workspace"

    integration = models.OneToOneField(Integration, on_delete=models.CASCADE, related_name="alert_state")
    failure_rate_threshold = models.PositiveSmallIntegerField(
        default=20, help_text="Alert when more than this percentage of a run's records fail (0 turns it off)."
    )
    last_sent_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True)
    raised_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The table it had in sync_logs (integrations' 0009 moved the model, not the table): a rename
        # would break the release still running while a deploy migrates.
        db_table = "sync_logs_alertstate"

    def __str__(self) -> str:
        return f"alerts of {self.integration}"

    @property
    def is_open(self) -> bool:
        return bool(self.message)
