"""Starting syncs: Sync Now, the schedule, pause and resume, and the sync settings (wizard step 3)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from integrations.models import Integration
from integrations.outbox import outbox_backfill
from sync_logs.models import SyncRun
from workspaces.services import audit_record


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
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(integration=integration, trigger=trigger)
    except IntegrityError:
        active = SyncRun.objects.filter(integration=integration, status__in=SyncRun.ACTIVE).first()
        raise SyncNotStarted("A sync is already running for this integration.", run=active) from None
    from integrations.tasks import integration_sync_task

    # After commit, so that the worker finds the run; the queue is read from settings now, not at import.
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    transaction.on_commit(lambda: integration_sync_task.apply_async(args=[run.pk], queue=queue))
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
    integration.list_id, integration.list_name, integration.event_name = list_id, list_name, event_name.strip()
    integration.save(
        update_fields=[
            "frequency",
            "overwrite_existing",
            "next_run_at",
            "list_id",
            "list_name",
            "event_name",
            "updated_at",
        ]
    )
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
