from __future__ import annotations

from django.db.models import QuerySet

from alert_channels.models import AlertChannel, AlertDelivery
from workspaces.models import Workspace
from workspaces.scoping import scoped


def channels_for(*, workspace: Workspace) -> QuerySet[AlertChannel]:
    return scoped(AlertChannel, workspace)


def deliveries_recent(*, workspace: Workspace, limit: int = 10) -> list[AlertDelivery]:
    """The workspace's last deliveries, newest first (the settings page's history)."""
    return list(scoped(AlertDelivery, workspace).select_related("channel").order_by("-created_at", "-id")[:limit])


def delivery_in_flight(*, workspace: Workspace) -> bool:
    """Whether a delivery is waiting or being sent (the page refreshes its status until none is)."""
    return scoped(AlertDelivery, workspace).filter(status__in=["pending", "sending"]).exists()
