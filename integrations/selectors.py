from __future__ import annotations

from django.db.models import QuerySet

from integrations.models import Integration
from workspaces.models import Workspace
from workspaces.scoping import scoped


def integrations_for(*, workspace: Workspace) -> QuerySet[Integration]:
    return scoped(Integration, workspace).select_related("connected_by")


def integration_by_kind(*, workspace: Workspace, kind: str) -> Integration | None:
    return integrations_for(workspace=workspace).filter(kind=kind).first()
