"""Sync-log upkeep: CSV export, retention, and alerts to the workspace admins."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from integrations.models import Integration
from mailer.services import mail_queue
from sync_logs.models import AlertState, SyncRecord, SyncRun
from workspaces.models import Membership, Role
from workspaces.services import audit_record

logger = logging.getLogger(__name__)

EXPORT_CHUNK = 2_000
# (CSV header, what is read for it): the first is the keyset cursor.
EXPORT_COLUMNS = [
    ("record_id", "id"),
    ("contact_id", "contact_id"),
    ("identifier", "identifier"),
    ("status", "status"),
    ("error_code", "error_code"),
    ("destination_code", "destination_code"),
    ("error_message", "error_message"),
    ("retryable", "retryable"),
    ("logged_at", "created_at"),
    ("payload", "payload_text"),
]
ALERT_EVERY = timedelta(hours=1)


# --- CSV export -----------------------------------------------------------------------------------


class _Line:
    """A file-like sink that hands back what csv.writer wrote, one line at a time."""

    def write(self, value: str) -> str:
        return value


def records_csv(run: SyncRun) -> Iterator[str]:
    """The run's log rows as CSV lines, read in keyset chunks: memory stays flat at any run size."""
    writer = csv.writer(_Line())
    yield writer.writerow([header for header, _ in EXPORT_COLUMNS])
    # The payload comes as the database's own JSON text: no parse and re-dump per row.
    rows = SyncRecord.objects.filter(run=run).order_by("id").annotate(payload_text=Cast("payload", TextField()))
    last = 0
    while True:
        chunk = list(rows.filter(id__gt=last).values_list(*(field for _, field in EXPORT_COLUMNS))[:EXPORT_CHUNK])
        if not chunk:
            return
        last = chunk[-1][0]
        for rid, contact_id, ident, status, code, own_code, message, retryable, at, payload in chunk:
            yield writer.writerow(
                [
                    rid,
                    contact_id or "",
                    _cell(ident),
                    status,
                    code,
                    _cell(own_code),
                    _cell(message),
                    "yes" if retryable else "no",
                    at.isoformat(),
                    "" if payload is None else _cell(payload),
                ]
            )


def _cell(value: str) -> str:
    """Captured text goes into a spreadsheet: a leading = + - @ would be read as a formula there."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# --- Retention ----------------------------------------------------------------------------------


# --- Alerts ---------------------------------------------------------------------------------------


def alert_state(integration: Integration) -> AlertState:
    state, _ = AlertState.objects.get_or_create(integration=integration)
    return state


def alert_threshold_save(*, integration: Integration, actor: User, threshold: int) -> None:
    state = alert_state(integration)
    state.failure_rate_threshold = threshold
    state.save(update_fields=["failure_rate_threshold"])
    audit_record(
        workspace=integration.workspace,
        actor=actor,
        verb="integration.alert_threshold_saved",
        target=integration.get_kind_display(),
        data={"failure_rate_threshold": threshold},
    )


def alert_raise(*, integration: Integration, reason: str) -> bool:
    """Open (or update) the integration's alert and email the workspace admins, at most once an hour
    per integration. Returns whether an email went out."""
    state = alert_state(integration)
    now = timezone.now()
    AlertState.objects.filter(pk=state.pk).update(message=reason, raised_at=state.raised_at if state.is_open else now)
    # One conditional UPDATE decides, so two workers finishing at once send one email, not two.
    due = AlertState.objects.filter(pk=state.pk).filter(Q(last_sent_at=None) | Q(last_sent_at__lte=now - ALERT_EVERY))
    if not due.update(last_sent_at=now):
        return False
    _alert_email(integration, reason)
    return True


def alert_clear(*, integration: Integration, actor: User | None = None) -> None:
    """Close the open alert (a clean run, a reconnect, or an admin dismissing it). The hourly email
    budget is not reset: a flapping integration still mails at most once an hour."""
    cleared = AlertState.objects.filter(integration=integration).exclude(message="").update(message="", raised_at=None)
    if cleared and actor is not None:
        audit_record(
            workspace=integration.workspace,
            actor=actor,
            verb="integration.alert_dismissed",
            target=integration.get_kind_display(),
        )


def _alert_email(integration: Integration, reason: str) -> None:
    """Queue the alert for the workspace's owners and admins. Sent by the mail task after commit,
    with retries: a mail server that is down or slow never fails or holds up the sync that raised it
    (and the banner shows the alert whatever becomes of the mail)."""
    workspace = integration.workspace
    recipients = list(
        Membership.objects.filter(workspace=workspace, role__in=[Role.OWNER, Role.ADMIN], user__is_active=True)
        .values_list("user__email", flat=True)
        .order_by("user__email")
    )
    if not recipients:
        return
    link = settings.SITE_URL + reverse("sync_logs:runs", args=[workspace.slug, integration.kind])
    name = integration.get_kind_display()
    mail_queue(
        to=recipients,
        subject=f"[Flowsync] {name} sync for {workspace.name} needs your attention",
        body=(
            f"The {name} integration of the workspace {workspace.name} needs attention:\n\n"
            f"{reason}\n\n"
            f"Sync logs: {link}\n\n"
            "Contacts are never dropped: failed ones can be retried from the sync logs once the cause is fixed.\n"
            "You get at most one such email per integration per hour."
        ),
    )


def alerts_after_run(run: SyncRun) -> None:
    """Raise an alert for a failed or abandoned run, or one whose failure rate passes the admin's
    threshold; a clean run closes the alert."""
    run.refresh_from_db()
    integration = run.integration
    threshold = alert_state(integration).failure_rate_threshold
    label = f"Sync run #{run.pk}"
    if run.status in (SyncRun.Status.FAILED, SyncRun.Status.ABANDONED):
        alert_raise(
            integration=integration,
            reason=f"{label} {run.get_status_display().lower()}: {run.error_summary or 'no reason recorded.'}",
        )
    elif run.total and threshold and run.failed * 100 > threshold * run.total:
        alert_raise(
            integration=integration,
            reason=(
                f"{label}: {run.failed} of {run.total} records failed ({run.failed * 100 // run.total}%), "
                f"above the {threshold}% alert threshold. {run.error_summary}"
            ).strip(),
        )
    elif integration.status == Integration.Status.CONNECTED:
        alert_clear(integration=integration)


def alerts_for_attention(integration: Integration) -> None:
    """The integration was put in "needs attention" (revoked key, refused token refresh, ...)."""
    alert_raise(integration=integration, reason=f"The integration needs attention: {integration.error_message}".strip())
