from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.timesince import timeuntil

from flows.models import FieldType, FlowField
from integrations.destinations import destination_for
from integrations.destinations.base import BusyError, DestinationError
from integrations.models import AlertState, Integration, OutboxItem
from sync_logs.models import SyncRun
from workspaces.models import Workspace
from workspaces.scoping import scoped


def integrations_for(*, workspace: Workspace) -> QuerySet[Integration]:
    return scoped(Integration, workspace).select_related("connected_by")


def integration_by_kind(*, workspace: Workspace, kind: str) -> Integration | None:
    return integrations_for(workspace=workspace).filter(kind=kind).first()


def integration_destination_lists(*, integration: Integration) -> tuple[list[dict], str]:
    """The destination's lists for the dropdown, or why they could not be read (one interactive call:
    a slow or busy destination answers "try again" rather than holding the page). Without them, the
    list already chosen stays a choice, so the other settings can still be saved."""
    try:
        return destination_for(integration, interactive=True).lists(), ""
    except DestinationError as exc:
        kept = [{"id": integration.list_id, "name": integration.list_name}] if integration.list_id else []
        name = integration.get_kind_display()
        if isinstance(exc, BusyError):
            return kept, f"Could not load {name}'s lists: {exc.message}"
        return kept, f"Could not load {name}'s lists ({exc.code})."


def integration_subscription_targets(*, integration: Integration) -> tuple[list[dict], str]:
    """What consent fields can subscribe people to, or why it could not be read; as the lists above,
    the targets already chosen stay choices without it."""
    try:
        return destination_for(integration, interactive=True).subscription_targets(), ""
    except DestinationError as exc:
        rules = (integration.config or {}).get("consent") or {}
        kept = [{"id": rule["target"], "name": rule.get("name", rule["target"])} for rule in rules.values()]
        name = integration.get_kind_display()
        if isinstance(exc, BusyError):
            return kept, f"Could not load {name}'s subscriptions: {exc.message}"
        return kept, f"Could not load {name}'s subscriptions ({exc.code}): {exc.message}"


def workspace_consent_fields(*, workspace: Workspace) -> list[tuple[str, str]]:
    """The consent fields of the workspace's flows, (key, label), one per key."""
    fields: dict[str, str] = {}
    for key, label in (
        scoped(FlowField, workspace)
        .filter(field_type=FieldType.CONSENT)
        .order_by("key", "id")
        .values_list("key", "label")
    ):
        fields.setdefault(key, label)
    return list(fields.items())


def open_alerts(*, workspace: Workspace) -> list[AlertState]:
    """The alerts the in-app banner shows for a workspace."""
    return list(scoped(AlertState, workspace).exclude(message="").select_related("integration").order_by("-raised_at"))


# Counts past this are shown as "10,000+": a capped count reads at most this many index entries (the
# partial indexes of pending and of failed rows), however big the backlog.
COUNT_CAP = 10_000


@dataclass(frozen=True)
class Count:
    value: int
    capped: bool

    def __str__(self) -> str:
        return f"{self.value:,}+" if self.capped else f"{self.value:,}"


def _capped_count(rows: QuerySet) -> Count:
    n = rows[: COUNT_CAP + 1].count()
    return Count(min(n, COUNT_CAP), n > COUNT_CAP)


@dataclass(frozen=True)
class SyncHealth:
    """An integration's sync at a glance: one state, and the facts behind it.

    ``state``: not_connected, needs_attention (the destination refused the credentials), paused,
    failing (an alert is open, contacts failed or wait to be tried again), or healthy. Only healthy
    is green: an open alert or a pause never shows as all well.
    """

    integration: Integration
    state: str
    label: str
    tone: str  # the badge's class: ok, warn, bad, or none
    reason: str
    active_run: SyncRun | None
    last_run: SyncRun | None
    waiting: Count
    retrying: Count
    failed: Count
    next_run_at: datetime | None

    @property
    def is_syncing(self) -> bool:
        return self.active_run is not None

    @property
    def next_run(self) -> str:
        """When the schedule syncs next, in words."""
        if self.state == "not_connected":
            return "Not connected"
        if self.integration.is_paused:
            return "Paused"
        if not self.integration.frequency:
            return "Manual only: press Sync Now"
        if self.next_run_at is None or self.next_run_at <= timezone.now() + timedelta(minutes=1):
            return "Within a minute"
        return f"In {timeuntil(self.next_run_at)} ({self.integration.get_frequency_display().lower()})"


def integration_health(*, integration: Integration) -> SyncHealth:
    """The health of one integration, read in a few small queries (capped counts, the latest runs)."""
    runs = list(integration.runs.order_by("-created_at", "-id")[:2])
    active = next((run for run in runs if run.is_active), None)
    last = next((run for run in runs if not run.is_active), None)
    rows = OutboxItem.objects.filter(integration=integration)
    pending = rows.filter(status=OutboxItem.Status.PENDING)
    waiting, retrying = _capped_count(pending), _capped_count(pending.filter(attempts__gt=0))
    failed = _capped_count(rows.filter(status=OutboxItem.Status.FAILED))
    alert = AlertState.objects.filter(integration=integration).exclude(message="").first()
    state, label, tone, reason = _state(integration, alert, last, failed, retrying)
    scheduled = integration.is_connected and integration.frequency and not integration.is_paused
    return SyncHealth(
        integration=integration,
        state=state,
        label=label,
        tone=tone,
        reason=reason,
        active_run=active,
        last_run=last,
        waiting=waiting,
        retrying=retrying,
        failed=failed,
        next_run_at=integration.next_run_at if scheduled else None,
    )


def _state(
    integration: Integration, alert: AlertState | None, last: SyncRun | None, failed: Count, retrying: Count
) -> tuple[str, str, str, str]:
    if not integration.is_connected:
        return "not_connected", "Not connected", "", ""
    if integration.status == Integration.Status.NEEDS_ATTENTION:
        return "needs_attention", "Needs attention", "bad", integration.error_message
    if integration.is_paused:
        return "paused", "Paused", "warn", "Nothing is sent until it is resumed; contacts keep queueing."
    if alert is not None:
        return "failing", "Failing records", "bad", alert.message
    if failed.value or retrying.value:
        parts = [f"{failed} failed" if failed.value else "", f"{retrying} to be tried again" if retrying.value else ""]
        return "failing", "Failing records", "warn", " and ".join(p for p in parts if p) + "."
    if last is not None and last.status == SyncRun.Status.ABANDONED:
        return "failing", "Failing records", "warn", "The last sync stopped before it finished; the next one resumes."
    return "healthy", "Healthy", "ok", ""


def integrations_health(*, workspace: Workspace) -> list[SyncHealth]:
    """Every integration of the workspace that is or was connected, for the overview."""
    return [integration_health(integration=i) for i in integrations_for(workspace=workspace).order_by("kind")]


SETUP_STEPS = (("connect", "Connect"), ("mapping", "Field mapping"), ("frequency", "Sync frequency"))


@dataclass(frozen=True)
class SetupStep:
    key: str
    label: str
    done: bool
    current: bool
    open: bool  # it may be visited now: the later steps need a connection


def integration_setup(*, integration: Integration | None, on: str | None = None) -> list[SetupStep]:
    """The setup's steps as they stand: each done or not, the one ``on`` (the page's own) current;
    on a page that is none of them, the first step left to do."""
    connected = integration is not None and integration.is_connected
    done = {
        "connect": connected,
        "mapping": connected and integration.mappings.exists(),
        "frequency": connected and integration.sync_configured_at is not None,
    }
    current = on or next((key for key, _ in SETUP_STEPS if not done[key]), None)
    return [
        SetupStep(key, label, done[key], key == current, key == "connect" or connected) for key, label in SETUP_STEPS
    ]
