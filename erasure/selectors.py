from __future__ import annotations

from django.db.models import Prefetch

from erasure.models import ErasureRequest, ErasureStep
from workspaces.models import Workspace
from workspaces.scoping import scoped


def erasure_requests_recent(*, workspace: Workspace, limit: int = 50) -> list[ErasureRequest]:
    steps = Prefetch("steps", queryset=ErasureStep.objects.order_by("destination_label"))
    return list(scoped(ErasureRequest, workspace).select_related("requested_by").prefetch_related(steps)[:limit])
