"""The one way into workspace-owned data.

SECURITY: every view under ``/w/<workspace_slug>/`` is wrapped in
:func:`workspace_view`, and every workspace-owned query goes through
:func:`scoped` or :func:`get_object_in_workspace`. A workspace the user is not
a member of, and an object of another workspace, are both a plain 404: the
response never tells "exists but not yours" apart from "does not exist".
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse

from accounts.decorators import unverified_redirect
from workspaces.models import ROLE_RANK, Membership, Role, Workspace

M = TypeVar("M", bound=models.Model)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_membership(request: HttpRequest, workspace_slug: str) -> Membership:
    """The request user's membership of the workspace, or 404."""
    try:
        return Membership.objects.select_related("workspace").get(
            workspace__slug=workspace_slug, user_id=request.user.pk
        )
    except Membership.DoesNotExist:
        raise Http404("No such workspace") from None


def workspace_view(min_role: str = Role.VIEWER, write_role: str = Role.ADMIN) -> Callable:
    """Resolve ``request.workspace`` and ``request.membership`` and check the role.

    ``min_role`` is needed for any method; ``write_role`` (admin by default) for
    any unsafe method, so a viewer can never write through a view that forgot
    to say so. The roles are kept on the view for the URL-walking tests.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, workspace_slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            # SECURITY: an address nobody proved reaches no workspace (checked before the
            # membership, so an unverified account learns nothing about which slugs exist).
            unverified = unverified_redirect(request)
            if unverified is not None:
                return unverified
            membership = get_membership(request, workspace_slug)
            required = min_role if request.method in SAFE_METHODS else max_role(min_role, write_role)
            if not membership.has_role(required):
                raise PermissionDenied(f"This needs the {Role(required).label.lower()} role in this workspace.")
            request.workspace = membership.workspace  # type: ignore[attr-defined]
            request.membership = membership  # type: ignore[attr-defined]
            if request.user.last_workspace_id != membership.workspace_id:
                # Remember it for "/" (one UPDATE when the user switches, not per request).
                get_user_model().objects.filter(pk=request.user.pk).update(last_workspace=membership.workspace)
                request.user.last_workspace_id = membership.workspace_id
            return view(request, *args, **kwargs)

        wrapper.workspace_min_role = min_role  # type: ignore[attr-defined]
        wrapper.workspace_write_role = max_role(min_role, write_role)  # type: ignore[attr-defined]
        return wrapper

    return decorator


def max_role(a: str, b: str) -> str:
    return a if ROLE_RANK[Role(a)] >= ROLE_RANK[Role(b)] else b


def _workspace_lookup(model: type[models.Model]) -> str:
    # Models that reach their workspace through a parent say so, e.g. "flow__workspace".
    return getattr(model, "workspace_lookup", "workspace")


def scoped(source: type[M] | models.QuerySet[M], workspace: Workspace) -> models.QuerySet[M]:
    """``source`` restricted to rows owned by ``workspace``."""
    queryset = source if isinstance(source, models.QuerySet) else source._default_manager.all()
    return queryset.filter(**{_workspace_lookup(queryset.model): workspace})


def get_object_in_workspace(source: type[M] | models.QuerySet[M], workspace: Workspace, **lookup: Any) -> M:
    """One object owned by ``workspace``, or 404 (also when it belongs to another one)."""
    try:
        return scoped(source, workspace).get(**lookup)
    except (models.ObjectDoesNotExist, ValueError):
        raise Http404("Not found") from None
