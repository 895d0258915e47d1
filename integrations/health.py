"""An integration's health: its alert (the banner every page of the workspace shows until it is
closed), the admin's failure-rate threshold, and the emails to the workspace's admins and the
messages to its alert channels (Slack, webhooks: alert_channels), under the same hourly budget.

Changes of status stay in integrations.status, which calls into this module (an alert for
"needs attention", closed on a reconnect); the sync tasks call :func:`alerts_after_run` once a
run is over.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from alert_channels.services import alert_channels_notify
from integrations.models import AlertState, Integration
from mailer.services import mail_queue
from sync_logs.models import SyncRun
from workspaces.models import Membership, Role
from workspaces.services import audit_record

ALERT_EVERY = timedelta(hours=1)


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
    workspace = integration.workspace
    alert_channels_notify(
        workspace=workspace,
        subject=_alert_subject(integration),
        message=reason,
        link=settings.SITE_URL + reverse("sync_logs:runs", args=[workspace.slug, integration.kind]),
    )
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


def _alert_subject(integration: Integration) -> str:
    return f"{integration.get_kind_display()} sync for {integration.workspace.name} needs your attention"


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
        subject=f"[Flowsync] {_alert_subject(integration)}",
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
