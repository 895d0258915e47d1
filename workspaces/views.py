from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.decorators import verified_email_required
from flows.models import Contact, ConversionFlow
from flows.selectors import contacts_per_day
from integrations.selectors import integrations_health
from lib.charts import Chart, stacked_bars
from sync_logs.selectors import delivered_per_day
from workspaces import selectors
from workspaces.forms import InviteForm, RoleForm, WorkspaceForm
from workspaces.models import Invitation, Membership, Role
from workspaces.scoping import get_object_in_workspace, scoped, workspace_view
from workspaces.services import (
    invitation_accept,
    invitation_create,
    invitation_find,
    invitation_problem,
    invitation_revoke,
    membership_change_role,
    membership_remove,
    workspace_create,
    workspace_rename,
)


@verified_email_required
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to the workspace they used last, or let them make one."""
    memberships = selectors.memberships_for_user(user=request.user)
    last = next((m for m in memberships if m.workspace_id == request.user.last_workspace_id), None)
    target = last or memberships.first()
    if target is None:
        return redirect("workspaces:create")
    return redirect("workspaces:dashboard", target.workspace.slug)


@verified_email_required
def workspace_create_view(request: HttpRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = workspace_create(name=form.cleaned_data["name"], owner=request.user)
        except ValidationError as exc:
            form.add_error("name", exc.messages)
        else:
            messages.success(request, f"Workspace “{workspace.name}” is ready. Create your first conversion flow.")
            return redirect("workspaces:dashboard", workspace.slug)
    has_workspaces = selectors.memberships_for_user(user=request.user).exists()
    return render(request, "workspaces/create.html", {"form": form, "has_workspaces": has_workspaces})


@workspace_view()
def dashboard(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    contacts = scoped(Contact, workspace)
    since = timezone.now() - timedelta(days=7)
    context = {
        "flow_count": scoped(ConversionFlow, workspace).count(),
        "contact_count": contacts.count(),
        "contacts_7d": contacts.filter(created_at__gte=since).count(),
        "recent_contacts": contacts.select_related("flow").order_by("-created_at", "-id")[:8],
        "integrations_health": integrations_health(workspace=workspace),
        "captured_chart": _per_day_chart(contacts_per_day(workspace=workspace), "captured"),
        "synced_chart": _per_day_chart(delivered_per_day(workspace=workspace), "delivered"),
    }
    return render(request, "workspaces/dashboard.html", context)


def _per_day_chart(days: list, key: str) -> Chart:
    return stacked_bars([(f"{day:%b %-d}", {key: n}) for day, n in days], (key,))


@workspace_view()
def workspace_settings(request: HttpRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None, instance=request.workspace)
    if request.method == "POST" and form.is_valid():
        workspace_rename(workspace=request.workspace, name=form.cleaned_data["name"], actor=request.user)
        messages.success(request, "Workspace renamed.")
        return redirect("workspaces:settings", request.workspace.slug)
    return render(request, "workspaces/settings.html", {"form": form})


@workspace_view()
def members(request: HttpRequest) -> HttpResponse:
    return _members_page(request, InviteForm())


def _members_page(request: HttpRequest, invite_form: InviteForm) -> HttpResponse:
    context = {
        "members": selectors.members_of(workspace=request.workspace),
        "invitations": selectors.pending_invitations(workspace=request.workspace),
        "invite_form": invite_form,
        "roles": Role.choices,
    }
    return render(request, "workspaces/members.html", context)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def member_invite(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation_create(
                workspace=request.workspace,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor_membership=request.membership,
            )
        except ValidationError as exc:
            form.add_error("email", exc.messages)
        except PermissionDenied as exc:
            form.add_error("role", str(exc))
        else:
            messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
            return redirect("workspaces:members", request.workspace.slug)
    return _members_page(request, form)


def _member_action(request: HttpRequest, action: object) -> HttpResponse:
    try:
        action()  # type: ignore[operator]
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    return redirect("workspaces:members", request.workspace.slug)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_object_in_workspace(Membership.objects.select_related("user"), request.workspace, pk=membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Pick a role: owner, admin or viewer.")
        return redirect("workspaces:members", request.workspace.slug)

    def change() -> None:
        membership_change_role(
            membership=membership, role=form.cleaned_data["role"], actor_membership=request.membership
        )
        messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")

    return _member_action(request, change)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_object_in_workspace(Membership.objects.select_related("user"), request.workspace, pk=membership_id)

    def remove() -> None:
        membership_remove(membership=membership, actor_membership=request.membership)
        messages.success(request, f"{membership.user.email} was removed from the workspace.")

    return _member_action(request, remove)


# Any member may leave, viewers included (they can change nothing else); the service keeps
# the last owner, audits it as member.left, and checks nothing more: it is their own membership.
@workspace_view(write_role=Role.VIEWER)
@require_POST
def member_leave(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    try:
        membership_remove(membership=request.membership, actor_membership=request.membership)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("workspaces:members", workspace.slug)
    messages.success(request, f"You left {workspace.name}.")
    return redirect("workspaces:home")


@workspace_view(min_role=Role.ADMIN)
@require_POST
def invitation_revoke_view(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_in_workspace(Invitation, request.workspace, pk=invitation_id)
    invitation_revoke(invitation=invitation, actor=request.user)
    messages.success(request, f"The invitation to {invitation.email} was revoked.")
    return redirect("workspaces:members", request.workspace.slug)


@workspace_view(min_role=Role.ADMIN)
def audit_log(request: HttpRequest) -> HttpResponse:
    return render(request, "workspaces/audit.html", {"events": selectors.audit_events(workspace=request.workspace)})


@verified_email_required
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    invitation = invitation_find(raw_token=token)
    problem = invitation_problem(invitation, request.user)
    if request.method == "POST" and problem is None:
        membership = invitation_accept(invitation=invitation, user=request.user)
        messages.success(request, f"Welcome to {membership.workspace.name}.")
        return redirect("workspaces:dashboard", membership.workspace.slug)
    status = 400 if problem else 200
    return render(request, "workspaces/invitation.html", {"invitation": invitation, "problem": problem}, status=status)
