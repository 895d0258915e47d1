"""Starting syncs: Sync Now, the schedule, pause and resume, and the sync settings (wizard step 3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from celery import signature
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import User
from integrations.models import Integration, OutboxItem
from integrations.outbox import outbox_backfill
from sync_logs import ledger
from sync_logs.models import SyncRecord, SyncRun
from workspaces.services import audit_record

SYNC_TASK = "integrations.tasks.sync_run_execute_task"


class SyncNotStarted(Exception):
    """Why no run was started, in words for the admin; ``run`` is the one already going, if any."""

    def __init__(self, message: str, run: SyncRun | None = None) -> None:
        super().__init__(message)
        self.message, self.run = message, run


def sync_now(*, integration: Integration, trigger: str = SyncRun.Trigger.MANUAL, actor: User | None = None) -> SyncRun:
    """Queue one run and send it to a worker. At most one queued-or-running run per integration:
    a second call while one is active starts nothing (a partial unique index decides races)."""
    if not integration.is_connected:
        raise SyncNotStarted("Connect the integration first.")
    if integration.is_paused:
        raise SyncNotStarted("The integration is paused. Resume it to sync; contacts keep queueing meanwhile.")
    if integration.status == Integration.Status.NEEDS_ATTENTION:
        raise SyncNotStarted(f"The integration needs attention: {integration.error_message}")
    run = ledger.run_create(integration=integration, trigger=trigger)
    if run is None:
        active = SyncRun.objects.filter(integration=integration, status__in=SyncRun.ACTIVE).first()
        raise SyncNotStarted("A sync is already running for this integration.", run=active)
    # After commit, so that the worker finds the run; the queue is read from settings now, not at import.
    # The task by its name: tasks.py calls this module, so importing it here would make a circle.
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    transaction.on_commit(lambda: signature(SYNC_TASK, args=[run.pk]).apply_async(queue=queue))
    if actor is not None:
        audit_record(
            workspace=integration.workspace,
            actor=actor,
            verb="integration.sync_started",
            target=integration.get_kind_display(),
            data={"run": run.pk, "trigger": trigger},
        )
    return run


def integrations_enqueue_due() -> list[SyncRun]:
    """The beat task's work: one run for each connected, unpaused integration whose time has come."""
    now = timezone.now()
    started = []
    due = Integration.objects.filter(status=Integration.Status.CONNECTED, paused_at=None, frequency__gt=0).filter(
        Q(next_run_at=None) | Q(next_run_at__lte=now)
    )
    for integration in due:
        Integration.objects.filter(pk=integration.pk).update(next_run_at=now + timedelta(minutes=integration.frequency))
        try:
            started.append(sync_now(integration=integration, trigger=SyncRun.Trigger.SCHEDULE))
        except SyncNotStarted:
            continue  # still running from last time: the next tick tries again
    return started


def integration_sync_settings_save(
    *,
    integration: Integration,
    actor: User,
    frequency: int,
    overwrite_existing: bool,
    backfill: bool,
    list_id: int | None = None,
    list_name: str = "",
    event_name: str = "",
) -> int:
    """Save the frequency and overwrite policy; with ``backfill``, queue the contacts captured before.

    Returns how many earlier contacts were queued."""
    integration.frequency = frequency
    integration.overwrite_existing = overwrite_existing
    integration.next_run_at = timezone.now() + timedelta(minutes=frequency) if frequency else None
    # The extras live in the destination's configuration, beside what its connect step stored.
    config = {k: v for k, v in (integration.config or {}).items() if k not in ("list_id", "list_name", "event_name")}
    if list_id:
        config.update(list_id=list_id, list_name=list_name)
    if event_name.strip():
        config["event_name"] = event_name.strip()
    integration.config = config
    integration.save(update_fields=["frequency", "overwrite_existing", "next_run_at", "config", "updated_at"])
    queued = outbox_backfill(integration=integration) if backfill else 0
    audit_record(
        workspace=integration.workspace,
        actor=actor,
        verb="integration.sync_settings_saved",
        target=integration.get_kind_display(),
        data={"frequency": frequency, "overwrite_existing": overwrite_existing, "backfilled": queued},
    )
    return queued


def integration_pause(*, integration: Integration, actor: User) -> None:
    integration.paused_at = timezone.now()
    integration.save(update_fields=["paused_at", "updated_at"])
    audit_record(
        workspace=integration.workspace, actor=actor, verb="integration.paused", target=integration.get_kind_display()
    )


def integration_resume(*, integration: Integration, actor: User) -> None:
    integration.paused_at = None
    integration.next_run_at = timezone.now()  # drain what queued up while paused at the next tick
    integration.save(update_fields=["paused_at", "next_run_at", "updated_at"])
    audit_record(
        workspace=integration.workspace, actor=actor, verb="integration.resumed", target=integration.get_kind_display()
    )


@dataclass
class Requeued:
    """What a retry or a backfill reset did: how many rows went back to the queue, and the run started, if any."""

    count: int
    run: SyncRun | None
    message: str


def _requeue(rows: QuerySet[OutboxItem]) -> int:
    """Put ``rows`` back in the queue, due now, with a fresh attempt budget. Rows being sent are left alone."""
    return rows.exclude(status=OutboxItem.Status.IN_FLIGHT).update(
        status=OutboxItem.Status.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        run=None,
        claimed_at=None,
        error_code="",
        error_message="",
        sent_before=True,  # a newer capture of the same person may have gone meanwhile (engine checks)
    )


def _start_after_requeue(integration: Integration, count: int, actor: User | None, noun: str) -> Requeued:
    if not count:
        return Requeued(0, None, f"Nothing to retry: no {noun} is still failed.")
    try:
        run = sync_now(integration=integration, trigger=SyncRun.Trigger.RETRY, actor=actor)
    except SyncNotStarted as exc:
        later = "the running sync or the next one" if exc.run else "the next sync once this is fixed"
        return Requeued(count, None, f"{count} {noun}(s) queued again; {later} sends them. ({exc.message})")
    return Requeued(count, run, f"{count} {noun}(s) queued again; a sync started.")


def retry_failed(
    *,
    integration: Integration,
    actor: User | None,
    run: SyncRun | None = None,
    record: SyncRecord | None = None,
) -> Requeued:
    """Send failed contacts again: one record's contact, a run's failed contacts, or every failed one.

    Contacts whose failure was retryable and that wait for their backoff are made due now
    too. A contact delivered since is not touched. A permanent failure that is still
    unfixed fails again with the same reason: nothing is dropped quietly.
    """
    rows = OutboxItem.objects.filter(
        integration=integration, status__in=[OutboxItem.Status.FAILED, OutboxItem.Status.PENDING]
    )
    if record is not None:
        rows = rows.filter(contact_id=record.contact_id)
    elif run is not None:
        failed = SyncRecord.objects.filter(run=run, status=SyncRecord.Status.FAILED).values("contact_id")
        # A failed outbox row keeps the run that failed it: that still finds them once retention
        # has deleted the run's log rows.
        rows = rows.filter(Q(contact_id__in=failed) | Q(run=run, status=OutboxItem.Status.FAILED))
    else:
        rows = rows.filter(Q(status=OutboxItem.Status.FAILED) | Q(attempts__gt=0))
    with transaction.atomic():
        count = _requeue(rows)
        if actor is not None:
            audit_record(
                workspace=integration.workspace,
                actor=actor,
                verb="integration.retry_requested",
                target=integration.get_kind_display(),
                data={"run": run.pk if run else None, "record": record.pk if record else None, "requeued": count},
            )
    return _start_after_requeue(integration, count, actor, "failed contact")


def backfill_reset(*, integration: Integration, actor: User | None) -> Requeued:
    """Queue every contact of the workspace again, delivered ones included (support's "Reset backfill":
    for a destination project that was emptied or replaced). Chunked; never all rows in memory."""
    added = outbox_backfill(integration=integration)
    reset = 0
    ids = OutboxItem.objects.filter(integration=integration).order_by("id").values_list("id", flat=True)
    last = 0
    while True:
        chunk = list(ids.filter(id__gt=last)[:10_000])
        if not chunk:
            break
        last = chunk[-1]
        reset += _requeue(OutboxItem.objects.filter(id__in=chunk).exclude(status=OutboxItem.Status.PENDING))
    audit_record(
        workspace=integration.workspace,
        actor=actor,
        verb="integration.backfill_reset",
        target=integration.get_kind_display(),
        data={"added": added, "requeued": reset},
    )
    return _start_after_requeue(integration, added + reset, actor, "contact")
