from __future__ import annotations

import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from field_mapping.services import integration_mapping_problems
from integrations import selectors, services
from integrations.destinations import REGISTRY, destination_class
from integrations.destinations.base import Capability, Destination
from integrations.forms import SyncSettingsForm
from integrations.models import Integration
from integrations.services import (
    ConnectError,
    integration_connect_verified,
    integration_disconnect,
    integration_reverify,
)
from integrations.sync import (
    NothingToSync,
    SyncNotStarted,
    integration_pause,
    integration_resume,
    integration_sync_settings_save,
    sync_now,
)
from sync_logs.models import SyncRun
from workspaces.models import Membership, Role
from workspaces.scoping import get_membership, get_object_in_workspace, workspace_view

OAUTH_SESSION_KEY = "oauth_pending"
# The last sign-in this session finished (its state and workspace), so that a replayed callback (a reload,
# the back button, a second tab) still ends on that workspace's page. The callback URL cannot say it: the
# redirect URI registered with the authorization server is one fixed URL for every workspace.
OAUTH_DONE_SESSION_KEY = "oauth_done"


def _destination(kind: str) -> type[Destination]:
    if kind not in REGISTRY:
        raise Http404("No such destination")
    return destination_class(kind)


def _oauth_context(destination: type[Destination]) -> dict:
    flow = destination.oauth
    return {
        "oauth_enabled": flow is not None and flow.enabled(),
        "oauth_disabled_reason": flow.disabled_reason() if flow is not None else "",
        "oauth_form": flow.start_form() if flow is not None and flow.start_form is not None else None,
    }


@workspace_view()
def integration_list(request: HttpRequest) -> HttpResponse:
    by_kind = {i.kind: i for i in selectors.integrations_for(workspace=request.workspace)}
    tiles = [
        {
            "kind": kind,
            "name": destination.label,
            "blurb": destination.blurb,
            "available": True,
            "integration": by_kind.get(kind),
            "health": _health(by_kind.get(kind)),
            "mapping_problems": _mapping_problems(by_kind.get(kind)),
        }
        for kind, destination in REGISTRY.items()
    ]
    return render(request, "integrations/list.html", {"tiles": tiles})


@workspace_view()
def integration_detail(request: HttpRequest, kind: str) -> HttpResponse:
    destination = _destination(kind)
    integration = selectors.integration_by_kind(workspace=request.workspace, kind=kind)
    if (integration is None or not integration.is_connected) and request.membership.is_admin:
        return redirect("integrations:connect", request.workspace.slug, kind)
    context = {
        "destination": destination,
        "integration": integration,
        "setup": selectors.integration_setup(integration=integration),
        "mapping_problems": _mapping_problems(integration),
        "runs": integration.runs.all()[:10] if integration else [],
        "health": _health(integration),
    }
    return render(request, "integrations/detail.html", context)


def _health(integration: Integration | None) -> selectors.SyncHealth | None:
    """A connected (or needs-attention) integration's sync health; nothing for one never or no longer connected."""
    if integration is None or not integration.is_connected:
        return None
    return selectors.integration_health(integration=integration)


def _mapping_problems(integration: Integration | None) -> dict[str, str]:
    """Drift between the saved mapping and the destination's schema: shown on the tile ("mapping broken")."""
    if integration is None or not integration.is_connected:
        return {}
    return integration_mapping_problems(integration=integration)


@workspace_view(min_role=Role.ADMIN)
@never_cache  # a refused key is sent back in its field: no cache may keep the page
def integration_connect(request: HttpRequest, kind: str) -> HttpResponse:
    destination = _destination(kind)
    integration = selectors.integration_by_kind(workspace=request.workspace, kind=kind)
    form = destination.connect_form(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            integration = services.integration_connect(
                workspace=request.workspace, actor=request.user, kind=kind, data=form.cleaned_data
            )
        except ConnectError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            where = destination.describe_config(integration.config)
            key = f"{integration.masked_key}, " if integration.masked_key else ""
            messages.success(request, f"Connected to {destination.label} ({key}{where}). Next: map your form fields.")
            return redirect("field_mapping:mapping", request.workspace.slug, kind)
    oauth_context = _oauth_context(destination)
    context = {
        "destination": destination,
        "integration": integration,
        "form": form,
        "setup": selectors.integration_setup(integration=integration, on="connect"),
        **oauth_context,
    }
    response = render(request, "integrations/connect.html", context, status=400 if form.errors else 200)
    if oauth_context["oauth_enabled"]:
        # SECURITY: the CSP's form-action is 'self', and browsers hold the redirect that follows a form
        # post to it too: the OAuth form posts here and is sent on to the authorization server, so this
        # page, and only this one, also allows that server (the attribute django-csp's @csp_update sets).
        response._csp_update = {"form-action": [destination.oauth.authorization_origin()]}
    return response


@workspace_view(min_role=Role.ADMIN)
@require_POST
def integration_reverify_view(request: HttpRequest, kind: str) -> HttpResponse:
    integration = _connected(request, kind)
    if integration_reverify(integration=integration, actor=request.user):
        messages.success(request, f"The connection works: {integration.get_kind_display()} accepted the credentials.")
    else:
        messages.error(request, integration.error_message)
    return redirect("integrations:detail", request.workspace.slug, kind)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def integration_disconnect_view(request: HttpRequest, kind: str) -> HttpResponse:
    integration = _connected(request, kind)
    integration_disconnect(integration=integration, actor=request.user)
    messages.success(request, "Disconnected. The credentials were deleted; the sync history is kept.")
    return redirect("integrations:list", request.workspace.slug)


def _connected(request: HttpRequest, kind: str) -> Integration:
    _destination(kind)
    integration = selectors.integration_by_kind(workspace=request.workspace, kind=kind)
    if integration is None or not integration.is_connected:
        raise Http404("Not connected")
    return integration


# --- OAuth ---------------------------------------------------------------------------------------


@workspace_view(min_role=Role.ADMIN)
@require_POST
def oauth_start(request: HttpRequest, kind: str) -> HttpResponse:
    destination = _destination(kind)
    flow = destination.oauth
    if flow is None or not flow.enabled():
        messages.error(request, flow.disabled_reason() if flow is not None else "This destination has no sign-in.")
        return redirect("integrations:connect", request.workspace.slug, kind)
    form = flow.start_form(request.POST) if flow.start_form is not None else None
    choices = form.cleaned_data if form is not None and form.is_valid() else {}
    try:
        flow.check_start(choices)
    except ConnectError as exc:
        messages.error(request, exc.message)
        return redirect("integrations:connect", request.workspace.slug, kind)
    redirect_uri = request.build_absolute_uri(reverse("oauth-callback", args=[kind]))
    url, state, verifier = flow.authorization_request(redirect_uri)
    # SECURITY: state and verifier live in this user's session only, bound to the workspace.
    request.session[OAUTH_SESSION_KEY] = {
        "kind": kind,
        "state": state,
        "verifier": verifier,
        "workspace": request.workspace.slug,
        "choices": choices,
        "redirect_uri": redirect_uri,
    }
    return redirect(url)


@login_required
def oauth_callback(request: HttpRequest, kind: str) -> HttpResponse:
    """Where the authorization server sends the browser back. Single use: the session entry is popped.

    Every failure ends on the destination's connect page of the workspace the sign-in started from, with
    what went wrong; nothing is stored then.
    """
    destination = _destination(kind)
    label = destination.label
    pending = request.session.pop(OAUTH_SESSION_KEY, None)
    if pending is None or pending.get("kind") != kind or destination.oauth is None:
        return _oauth_callback_spent(request, kind)
    request.session[OAUTH_DONE_SESSION_KEY] = {"state": pending["state"], "workspace": pending["workspace"]}
    membership = get_membership(request, pending["workspace"])
    back = _oauth_failed_redirect(membership, kind)
    if not membership.is_admin:
        messages.error(request, "Only workspace admins can connect integrations.")
        return back
    if not _same_state(request, pending["state"]):
        messages.error(
            request,
            f"The answer from {label} did not match this sign-in (state mismatch). Nothing was connected; start again.",
        )
        return back
    if request.GET.get("error"):
        reason = (
            f"You declined access in {label}"
            if request.GET["error"] == "access_denied"
            else (f"{label} refused ({request.GET['error']})")
        )
        messages.error(request, f"{reason}. Nothing was connected.")
        return back
    try:
        connection = destination.oauth.connect(
            code=request.GET.get("code", ""),
            code_verifier=pending["verifier"],
            redirect_uri=pending["redirect_uri"],
            choices=pending.get("choices") or {},
            bucket_id=f"oauth-connect-{membership.workspace.pk}",
        )
    except ConnectError as exc:
        messages.error(request, exc.message)
        return back
    integration_connect_verified(workspace=membership.workspace, actor=request.user, kind=kind, connection=connection)
    messages.success(request, f"Connected to {label} with OAuth. Next: map your form fields.")
    return redirect("field_mapping:mapping", membership.workspace.slug, kind)


def _same_state(request: HttpRequest, expected: str) -> bool:
    # As bytes: compare_digest raises TypeError on a str that is not ASCII, and the URL is anyone's.
    return secrets.compare_digest(request.GET.get("state", "").encode(), expected.encode())


def _oauth_failed_redirect(membership: Membership, kind: str) -> HttpResponse:
    # Admins go back to the connect page to try again; anyone else (demoted meanwhile) to the tiles.
    if membership.is_admin:
        return redirect("integrations:connect", membership.workspace.slug, kind)
    return redirect("integrations:list", membership.workspace.slug)


def _oauth_callback_spent(request: HttpRequest, kind: str) -> HttpResponse:
    """A callback with no sign-in pending in this session: a replay, or one this session never started."""
    label = _destination(kind).label
    messages.error(
        request,
        f"This {label} sign-in was already completed or has expired, so nothing was changed. "
        f"If {label} is not connected yet, start again.",
    )
    done = request.session.get(OAUTH_DONE_SESSION_KEY) or {}
    if done and _same_state(request, done["state"]):
        return _oauth_failed_redirect(get_membership(request, done["workspace"]), kind)
    # SECURITY: the URL alone is not trusted to name a workspace; send the user to their own home page.
    return redirect("workspaces:home")


# --- Syncing --------------------------------------------------------------------------------------


@workspace_view(min_role=Role.ADMIN)
def sync_settings(request: HttpRequest, kind: str) -> HttpResponse:
    """Wizard step 3: frequency and overwrite policy; Save, or Save & Sync Now."""
    destination = _destination(kind)
    integration = _connected(request, kind)
    initial = {
        "frequency": integration.frequency,
        "overwrite_existing": "1" if integration.overwrite_existing else "0",
        "list_id": integration.list_id or "",
        "event_name": integration.event_name,
    }
    lists, lists_error = (
        selectors.integration_destination_lists(integration=integration)
        if destination.supports(Capability.LISTS, integration.config)
        else (None, "")
    )
    consent_fields = selectors.workspace_consent_fields(workspace=request.workspace)
    targets, targets_error = (
        selectors.integration_subscription_targets(integration=integration)
        if consent_fields and destination.supports(Capability.SUBSCRIPTIONS, integration.config)
        else (None, "")
    )
    form = SyncSettingsForm(
        request.POST or None,
        initial=initial,
        lists=lists,
        destination=destination,
        config=integration.config,
        consent_fields=consent_fields,
        targets=targets,
    )
    if request.method == "POST" and form.is_valid():
        values = {k: v for k, v in form.cleaned_data.items() if not k.startswith(("consent__", "unticked__"))}
        queued = integration_sync_settings_save(
            integration=integration,
            actor=request.user,
            list_name=form.list_names.get(values.get("list_id") or 0, ""),
            consent=form.consent_rules(),
            **values,
        )
        note = f" {queued} earlier contacts were queued." if queued else ""
        if "sync_now" in request.POST:
            return _start_sync(request, integration, kind, f"Settings saved.{note}")
        messages.success(request, f"Sync settings saved.{note}")
        return redirect("integrations:setup-summary", request.workspace.slug, kind)
    context = {
        "destination": destination,
        "integration": integration,
        "form": form,
        "setup": selectors.integration_setup(integration=integration, on="frequency"),
        "lists_error": lists_error,
        "targets_error": targets_error,
    }
    return render(request, "integrations/sync_settings.html", context, status=400 if form.errors else 200)


def _start_sync(request: HttpRequest, integration: Integration, kind: str, prefix: str = "") -> HttpResponse:
    try:
        sync_now(integration=integration, actor=request.user)
    except NothingToSync as exc:
        messages.info(request, f"{prefix} {exc.message}".strip())
    except SyncNotStarted as exc:
        messages.warning(request, f"{prefix} {exc.message}".strip())
    else:
        messages.success(request, f"{prefix} Sync started.".strip())
    return redirect("integrations:detail", request.workspace.slug, kind)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def sync_now_view(request: HttpRequest, kind: str) -> HttpResponse:
    return _start_sync(request, _connected(request, kind), kind)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def pause_view(request: HttpRequest, kind: str) -> HttpResponse:
    integration = _connected(request, kind)
    if request.POST.get("action") == "resume":
        integration_resume(integration=integration, actor=request.user)
        messages.success(request, "Resumed: what queued up while paused is sent at the next sync.")
    else:
        integration_pause(integration=integration, actor=request.user)
        messages.success(request, "Paused: contacts keep queueing and are sent when you resume.")
    return redirect("integrations:detail", request.workspace.slug, kind)


@workspace_view()
def setup_summary(request: HttpRequest, kind: str) -> HttpResponse:
    """The setup's last page: what will sync, when, and the first run (Sync Now, or when the schedule starts it)."""
    destination = _destination(kind)
    integration = selectors.integration_by_kind(workspace=request.workspace, kind=kind)
    if integration is None or not integration.is_connected:
        return redirect("integrations:detail", request.workspace.slug, kind)
    context = {
        "destination": destination,
        "integration": integration,
        "setup": selectors.integration_setup(integration=integration),
        "mapped": [m for m in integration.mappings.order_by("position", "pk") if m.target],
        "health": selectors.integration_health(integration=integration),
    }
    return render(request, "integrations/setup_summary.html", context)


@workspace_view()
def sync_panel(request: HttpRequest, kind: str) -> HttpResponse:
    """An integration's health and its running sync; htmx polls it while a sync runs, and the last
    answer (the run over) brings Sync Now back and stops the polling."""
    integration = selectors.integration_by_kind(workspace=request.workspace, kind=kind)
    if integration is None:
        raise Http404("No such integration")
    health = selectors.integration_health(integration=integration)
    return render(request, "integrations/_sync_panel.html", {"health": health})


@workspace_view()
def run_progress(request: HttpRequest, kind: str, run_id: int) -> HttpResponse:
    """The live counts of a run; htmx polls it while the run is active (the finished tile has no poll)."""
    run = get_object_in_workspace(SyncRun, request.workspace, pk=run_id, integration__kind=kind)
    return render(request, "integrations/_run_progress.html", {"run": run, "kind": kind})
