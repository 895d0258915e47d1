from __future__ import annotations

from django.db.models import QuerySet

from integrations.destinations import destination_for
from integrations.destinations.base import BusyError, DestinationError
from integrations.models import AlertState, Integration
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


def open_alerts(*, workspace: Workspace) -> list[AlertState]:
    """The alerts the in-app banner shows for a workspace."""
    return list(scoped(AlertState, workspace).exclude(message="").select_related("integration").order_by("-raised_at"))
