from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q
from django.utils import timezone

from integrations.models import Integration


@dataclass(frozen=True)
class RunProgress:
    """How far a run is: ``done`` of ``expected`` contacts, and about how many seconds are left
    (None until a first batch has given it a pace)."""

    done: int
    expected: int
    percent: int
    seconds_left: float | None

    @property
    def time_left(self) -> str:
        """The estimate in words, rounded as an estimate should be."""
        if self.seconds_left is None:
            return "estimating the time left"
        seconds = round(self.seconds_left)
        if seconds < 10:
            return "a few seconds left"
        if seconds < 90:
            return f"about {round(seconds, -1)} s left"
        if seconds < 90 * 60:
            return f"about {round(seconds / 60)} min left"
        return f"about {seconds / 3600:.1f} h left"


class SyncRun(models.Model):
    """One sync of one integration.

    States: queued (created, task sent) -> running (a worker took it, heartbeats) ->
    succeeded | partial (some records failed) | failed (none delivered, or stopped by
    an auth error) | abandoned (its worker died; its records went back to pending).
    At most one queued-or-running run per integration (a partial unique index).
    """

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Sync Now"
        RETRY = "retry", "Retry"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partial"
        FAILED = "failed", "Failed"
        ABANDONED = "abandoned", "Abandoned"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    workspace_lookup = "integration__workspace"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    # Who holds the run now: a run is carried by a chain of short tasks (integrations.engine, slices), and
    # each task that takes the run moves this on; every write of the run is fenced on it, so a task
    # delivered twice, or one that woke after the run moved on, writes nothing. db_default: rows the
    # previous release inserts during a deploy get it too.
    slice_token = models.PositiveIntegerField(default=0, db_default=0)
    # The contacts due when the run started: the "of N" of its progress (contacts captured meanwhile
    # may join the run, so it may do more). db_default: the set-based insert of the beat dispatcher
    # (sync_logs.ledger.runs_create) names its columns, and the previous release's too.
    planned = models.PositiveIntegerField(default=0, db_default=0)
    total = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error_summary = models.TextField(blank=True)
    # Set when the retention task deleted this run's log rows; the summary above is kept.
    logs_purged_at = models.DateTimeField(null=True, blank=True)
    # HTTP exchanges the run made but did not keep (past EXCHANGE_LOG_MAX_PER_RUN, sync_logs.exchanges): the run
    # page says how many. db_default: the beat's set-based insert (ledger.runs_create) names its columns.
    exchanges_dropped = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration"], condition=Q(status__in=["queued", "running"]), name="one_active_run"
            )
        ]
        indexes = [models.Index(fields=["integration", "-created_at"], name="run_by_integration")]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.integration} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def progress(self) -> RunProgress:
        # Contacts captured during the run may join it: then it does more than planned, and "of N" follows.
        expected = max(self.planned, self.total)
        percent = 100 if not expected else min(100, self.total * 100 // expected)
        seconds_left = None
        if self.started_at and self.total and expected > self.total:
            elapsed = (timezone.now() - self.started_at).total_seconds()
            seconds_left = elapsed / self.total * (expected - self.total)
        return RunProgress(done=self.total, expected=expected, percent=percent, seconds_left=seconds_left)

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class SyncRecord(models.Model):
    """What happened to one contact in one run: the sync log row. Written in bulk.

    On PostgreSQL the table is partitioned by day on ``created_at`` (migration 0006, sync_logs/partitions.py):
    its key there is (id, created_at), ``id`` stays unique through the identity, and Django keeps ``id`` as the
    model's primary key. A query by run should add ``partitions.run_window(run)`` to read only the run's days.
    Nothing may point a foreign key at this table (a partitioned table's key holds the partition column).
    """

    class Status(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    workspace_lookup = "run__integration__workspace"

    # No single-column indexes on the keys: the composite indexes below start with them, and each
    # index less is one write less per log row (a sync writes one row per contact).
    # No database constraint on either key: each would cost every log row a lookup and a row lock of its run and
    # its contact at commit (measured: 15 of a batch's ~100 us of database work per contact). Both are set from
    # rows the run holds, and their deletes go through Django (CASCADE, SET_NULL), which does what the
    # constraint's action did.
    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, related_name="records", db_index=False, db_constraint=False
    )
    contact = models.ForeignKey(
        "flows.Contact",
        null=True,
        on_delete=models.SET_NULL,
        related_name="sync_records",
        db_index=False,
        db_constraint=False,
    )
    identifier = models.CharField(max_length=254, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    error_code = models.CharField(max_length=50, blank=True)  # Flowsync's (destinations.base.STABLE_CODES)
    # The destination's own name for it (its envelope's code, the list or the reason it named it in),
    # kept for support; db_default: rows the previous release writes during a deploy get it too.
    destination_code = models.CharField(max_length=100, blank=True, default="", db_default="")
    error_message = models.TextField(blank=True)
    retryable = models.BooleanField(default=False)
    # The mapped record as sent, in the destination's shape (Destination.payload; never a credential).
    payload = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The log viewer's queries, each an index range scan at millions of rows: a run's
        # records in id order (keyset pages), by status, and by identifier prefix (the
        # pattern opclass lets LIKE 'abc%' use the index whatever the database collation).
        indexes = [
            models.Index(fields=["run", "id"], name="record_run_id"),
            # The status filter, for the rows not delivered (failed, skipped): nearly every row is delivered,
            # and those go without an entry here, one index write less per log row. The "delivered"
            # filter walks (run, id), where nearly every row it meets is one.
            models.Index(
                fields=["run", "status", "id"], condition=~Q(status="delivered"), name="record_run_undelivered"
            ),
            # One identifier index serves the viewer's prefix search within a run (the prefix
            # range, then the run) and support's exact search across runs (admin); a second,
            # run-led one would cost every sync another index write per row.
            models.Index(fields=["identifier"], name="record_identifier", opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["contact", "-created_at"], name="record_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.identifier or self.contact_id}: {self.status}"


class IdentifierArrayField(ArrayField):
    """A list of identifiers: a PostgreSQL array (a GIN index finds the rows holding one), and JSON text on
    SQLite (``./run``), which has no arrays; there sync_logs.exchanges matches the text instead."""

    def db_type(self, connection) -> str:
        return super().db_type(connection) if connection.vendor == "postgresql" else "text"

    def cast_db_type(self, connection) -> str:
        return super().cast_db_type(connection) if connection.vendor == "postgresql" else "text"

    def get_placeholder(self, value: Any, compiler, connection) -> str:
        return super().get_placeholder(value, compiler, connection) if connection.vendor == "postgresql" else "%s"

    def get_db_prep_value(self, value: Any, connection, prepared: bool = False) -> Any:
        if connection.vendor == "postgresql":
            return super().get_db_prep_value(value, connection, prepared)
        return None if value is None else json.dumps(list(value))

    def from_db_value(self, value: Any, expression, connection) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class SyncExchange(models.Model):
    """One try of one HTTP request a run made to its destination (destinations.http.Exchange), as support
    and the run page read it: timings, status, and the bodies masked (lib.logredact) and cut to
    EXCHANGE_LOG_BODY_CHARS. No header is kept: the credentials travel there. Written by
    sync_logs.exchanges, at most EXCHANGE_LOG_MAX_PER_RUN per run (then failed ones only), deleted with
    the run's log rows (ledger.sync_logs_purge) and scrubbed by an erasure."""

    workspace_lookup = "run__integration__workspace"

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="exchanges", db_index=False)
    created_at = models.DateTimeField()  # when the try was sent (Exchange.started_at)
    destination = models.CharField(max_length=20)  # the registry's kind
    method = models.CharField(max_length=10)
    endpoint = models.CharField(max_length=200)  # the path as its endpoint is named: never a person's identifier
    status = models.PositiveSmallIntegerField(null=True, blank=True)  # None: no answer (timeout, connection)
    error_code = models.CharField(max_length=50, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField()
    attempt = models.PositiveSmallIntegerField()  # this try's number within its call, from 1
    budget_wait_ms = models.PositiveIntegerField(default=0)  # waited for the rate budget before it was sent
    retry_wait_ms = models.PositiveIntegerField(default=0)  # slept after the previous try failed (429, 5xx)
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)
    # The identifiers of the people the request carried, as their log rows name them (SyncRecord.identifier).
    carries = IdentifierArrayField(models.CharField(max_length=254), default=list, blank=True)

    class Meta:
        indexes = [
            # The run page's list, keyset pages in id order, and the bound's count at a slice's start.
            models.Index(fields=["run", "id"], name="exchange_run_id"),
            # Retention deletes by age, oldest first, a batch at a time (ledger.sync_logs_purge).
            models.Index(fields=["created_at"], name="exchange_created_at"),
            # A record's page finds the requests that carried it, an erasure those of the erased person
            # (carries @> / && ARRAY[...]). Made on PostgreSQL only (migration 0011): SQLite has no GIN.
            GinIndex(fields=["carries"], name="exchange_carries"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.endpoint}: {self.status or self.error_code}"

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 400
