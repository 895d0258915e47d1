from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from workspaces.models import AuditEvent, Invitation, Membership, Workspace
from workspaces.scoping import scoped


def memberships_for_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__name")


def members_of(*, workspace: Workspace) -> QuerySet[Membership]:
    return scoped(Membership, workspace).select_related("user").order_by("user__email")


def pending_invitations(*, workspace: Workspace) -> QuerySet[Invitation]:
    return scoped(Invitation, workspace).filter(accepted_at=None, revoked_at=None).order_by("-created_at")


def audit_events(*, workspace: Workspace, limit: int = 200) -> QuerySet[AuditEvent]:
    return scoped(AuditEvent, workspace).select_related("actor")[:limit]
