"""Writes for workspaces, memberships and invitations. Every change is audited."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from lib.emails import normalize_email
from lib.names import clean_name
from lib.tokens import hash_token, new_token
from mailer.services import mail_queue
from workspaces.models import AuditEvent, Invitation, Membership, Role, Workspace

RESERVED_SLUGS = {"new", "admin", "api", "static", "accounts", "f", "w", "invitations"}


def audit_record(
    *, workspace: Workspace | None, actor: User | None, verb: str, target: str = "", data: dict | None = None
) -> AuditEvent:
    return AuditEvent.objects.create(
        workspace=workspace,
        actor=actor if actor and actor.pk else None,
        actor_email=getattr(actor, "email", "") or "",
        verb=verb,
        target=target[:200],
        data=data or {},
    )


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "workspace"
    if base in RESERVED_SLUGS:
        base = f"{base}-ws"
    slug, n = base, 1
    while Workspace.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


DAY = timedelta(days=1)


def _over_quota(queryset: QuerySet, limit: int) -> bool:
    """Whether ``queryset`` (rows made in the last day) already holds ``limit`` rows; 0 is no limit.
    Counts at most ``limit`` rows, however many there are."""
    return limit > 0 and queryset[:limit].count() >= limit


@transaction.atomic
def workspace_create(*, name: str, owner: User) -> Workspace:
    name = clean_name(name)
    if not name:
        raise ValidationError({"name": "Give the workspace a name."})
    # The owner's row locked: two creations at once are counted one after the other.
    User.objects.select_for_update().filter(pk=owner.pk).first()
    made = Workspace.objects.filter(created_by=owner, created_at__gte=timezone.now() - DAY)
    if _over_quota(made, settings.WORKSPACES_PER_USER_PER_DAY):
        raise ValidationError(
            {
                "name": f"You created {settings.WORKSPACES_PER_USER_PER_DAY} workspaces in the last 24 hours, "
                "the most allowed. Try again tomorrow."
            }
        )
    for _ in range(3):  # two people racing for the same slug: try the next one
        try:
            with transaction.atomic():
                workspace = Workspace.objects.create(name=name, slug=_unique_slug(name), created_by=owner)
                break
        except IntegrityError:
            continue
    else:
        raise ValidationError({"name": "Could not pick an address for this workspace, try another name."})
    Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    audit_record(workspace=workspace, actor=owner, verb="workspace.created", target=workspace.name)
    return workspace


def workspace_rename(*, workspace: Workspace, name: str, actor: User) -> Workspace:
    old = workspace.name
    workspace.name = clean_name(name)
    workspace.save(update_fields=["name"])
    audit_record(workspace=workspace, actor=actor, verb="workspace.renamed", target=workspace.name, data={"from": old})
    return workspace


def _check_can_assign(*, actor_membership: Membership, role: str) -> None:
    if not actor_membership.is_admin:
        raise PermissionDenied("Only admins can manage members.")
    if role == Role.OWNER and not actor_membership.is_owner:
        raise PermissionDenied("Only an owner can make someone an owner.")


def invitation_create(
    *, workspace: Workspace, email: str, role: str, actor_membership: Membership
) -> tuple[Invitation, str]:
    """Create an invitation and email its link (after commit). Returns it with the raw token (shown nowhere else)."""
    _check_can_assign(actor_membership=actor_membership, role=role)
    email = normalize_email(email)
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise ValidationError({"email": f"{email} is already a member of this workspace."})
    raw = new_token("inv_")
    inviter = actor_membership.user
    with transaction.atomic():
        _check_invitation_quotas(workspace=workspace, inviter=inviter)
        # A new invitation for the same address replaces the pending one.
        Invitation.objects.filter(workspace=workspace, email__iexact=email, accepted_at=None, revoked_at=None).update(
            revoked_at=timezone.now()
        )
        invitation = Invitation.objects.create(
            workspace=workspace,
            email=email,
            role=role,
            token_hash=hash_token(raw),
            invited_by=inviter,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
        )
        audit_record(workspace=workspace, actor=inviter, verb="member.invited", target=email, data={"role": role})
        link = settings.SITE_URL + reverse("workspaces:invitation-accept", args=[raw])
        mail_queue(
            to=[email],
            subject=f"You're invited to {workspace.name} on Flowsync",
            body=(
                f"{inviter.display_name} invited you to join the workspace "
                f'"{workspace.name}" on Flowsync as {Role(role).label.lower()}.\n\n'
                f"Accept the invitation: {link}\n\n"
                f"The link works for {settings.INVITATION_TTL_DAYS} days."
            ),
        )
    return invitation, raw


def _check_invitation_quotas(*, workspace: Workspace, inviter: User) -> None:
    """Refuse past the day's invitations per inviter (every workspace of theirs) and per workspace.

    Counted from the invitations themselves (replaced and revoked ones included: each was a mail),
    under row locks on the workspace, then the inviter (always in that order), so two invitations
    sent at once cannot both take the last one.
    """
    Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
    User.objects.select_for_update().filter(pk=inviter.pk).first()
    since = timezone.now() - DAY
    if _over_quota(
        Invitation.objects.filter(invited_by=inviter, created_at__gte=since), settings.INVITATIONS_PER_USER_PER_DAY
    ):
        raise ValidationError(
            {
                "email": f"You sent {settings.INVITATIONS_PER_USER_PER_DAY} invitations in the last 24 hours, "
                "the most allowed. Try again tomorrow."
            }
        )
    if _over_quota(
        Invitation.objects.filter(workspace=workspace, created_at__gte=since),
        settings.INVITATIONS_PER_WORKSPACE_PER_DAY,
    ):
        raise ValidationError(
            {
                "email": f"This workspace sent {settings.INVITATIONS_PER_WORKSPACE_PER_DAY} invitations in the last "
                "24 hours, the most allowed. Try again tomorrow."
            }
        )


def invitation_revoke(*, invitation: Invitation, actor: User) -> None:
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(workspace=invitation.workspace, actor=actor, verb="member.invitation_revoked", target=invitation.email)


def invitation_find(*, raw_token: str) -> Invitation | None:
    return Invitation.objects.select_related("workspace", "invited_by").filter(token_hash=hash_token(raw_token)).first()


def invitation_problem(invitation: Invitation | None, user: User) -> str | None:
    """Why ``user`` cannot accept ``invitation``, in words for them; None when they can."""
    if invitation is None or invitation.revoked_at:
        return "This invitation link is not valid. Ask the workspace admin for a new one."
    if invitation.accepted_at:
        return "This invitation has already been used."
    if invitation.expires_at < timezone.now():
        return "This invitation has expired. Ask the workspace admin for a new one."
    if user.email.lower() != invitation.email.lower():
        # SECURITY: whoever holds the link but is not the invitee learns no address from it.
        return (
            f"This invitation was sent to another address, and you are logged in as {user.email}. "
            "Log in with the address that received it to accept it."
        )
    if not user.email_verified:
        return "Confirm your email address first: follow the link we mailed you, then open the invitation again."
    return None


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    problem = invitation_problem(invitation, user)
    if problem:
        raise ValidationError(problem)
    membership, _ = Membership.objects.get_or_create(
        workspace=invitation.workspace, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(
        workspace=invitation.workspace,
        actor=user,
        verb="member.joined",
        target=user.email,
        data={"role": membership.role, "invited_by": getattr(invitation.invited_by, "email", None)},
    )
    return membership


def _owners_left_after(membership: Membership) -> int:
    # Locks the owners' rows (callers are atomic): two owners leaving or demoting each other
    # at once are serialized, and the second sees the first's change, so one owner stays.
    owners = Membership.objects.select_for_update().filter(workspace=membership.workspace, role=Role.OWNER)
    return sum(1 for pk in owners.values_list("pk", flat=True) if pk != membership.pk)


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, actor_membership: Membership) -> Membership:
    _check_can_assign(actor_membership=actor_membership, role=role)
    if membership.role == Role.OWNER and not actor_membership.is_owner:
        raise PermissionDenied("Only an owner can change an owner's role.")
    if membership.role == Role.OWNER and role != Role.OWNER and _owners_left_after(membership) == 0:
        raise ValidationError("A workspace needs at least one owner. Make someone else owner first.")
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        workspace=membership.workspace,
        actor=actor_membership.user,
        verb="member.role_changed",
        target=membership.user.email,
        data={"from": old, "to": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor_membership: Membership) -> None:
    leaving = membership.pk == actor_membership.pk
    if not leaving:
        _check_can_assign(actor_membership=actor_membership, role=membership.role)
    if membership.role == Role.OWNER and _owners_left_after(membership) == 0:
        raise ValidationError("A workspace needs at least one owner. Make someone else owner first.")
    audit_record(
        workspace=membership.workspace,
        actor=actor_membership.user,
        verb="member.left" if leaving else "member.removed",
        target=membership.user.email,
        data={"role": membership.role},
    )
    membership.delete()
