"""Workspace settings > Alerts: the channels alerts go to besides email, a test for each, their last delivery."""

from __future__ import annotations

from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from alert_channels import selectors, services
from alert_channels.forms import ChannelForm
from alert_channels.models import AlertChannel
from alert_channels.transports import SIGNATURE_HEADER
from workspaces.models import Role
from workspaces.scoping import get_object_in_workspace, workspace_view

TEST_EVERY = 10  # seconds


def _context(request: HttpRequest, form: ChannelForm) -> dict:
    workspace = request.workspace
    return {
        "form": form,
        "channels": selectors.channels_for(workspace=workspace),
        "deliveries": selectors.deliveries_recent(workspace=workspace),
        "in_flight": selectors.delivery_in_flight(workspace=workspace),
        "signature_header": SIGNATURE_HEADER,
    }


@workspace_view(min_role=Role.ADMIN)
def alert_channels_page(request: HttpRequest) -> HttpResponse:
    form = ChannelForm(request.POST or None)
    context = _context(request, form)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            channel, secret = services.channel_create(
                workspace=request.workspace, actor=request.user, kind=data["kind"], name=data["name"], url=data["url"]
            )
        except services.ChannelRefused as exc:
            form.add_error("url", str(exc))
        else:
            if not secret:
                messages.success(request, f"Alerts now go to {channel.name} too. Send a test to check it.")
                return redirect("alert_channels:settings", request.workspace.slug)
            # The secret is shown once, on this answer (not through a redirect: it would sit in the session).
            context = _context(request, ChannelForm())
            context.update(new_channel=channel, signing_secret=secret)
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "alert_channels/settings.html", context, status=status)


@workspace_view(min_role=Role.ADMIN)
def alert_channels_status(request: HttpRequest) -> HttpResponse:
    """The channels' table alone, polled while a delivery is on its way (the page itself to a browser)."""
    template = "alert_channels/_channels.html" if request.htmx else "alert_channels/settings.html"
    return render(request, template, _context(request, ChannelForm()))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def alert_channel_test(request: HttpRequest, channel_id: int) -> HttpResponse:
    channel = get_object_in_workspace(AlertChannel, request.workspace, pk=channel_id)
    # One test per channel per TEST_EVERY: each holds a worker for up to a delivery's time limit.
    if not cache.add(f"alert-channel-test:{channel.pk}", 1, TEST_EVERY):
        messages.warning(request, f"A test went to {channel.name} a moment ago: wait a few seconds.")
        return redirect("alert_channels:settings", request.workspace.slug)
    services.channel_test(channel=channel, actor=request.user)
    messages.success(request, f"A test alert is on its way to {channel.name}; its result shows below.")
    return redirect("alert_channels:settings", request.workspace.slug)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def alert_channel_remove(request: HttpRequest, channel_id: int) -> HttpResponse:
    channel = get_object_in_workspace(AlertChannel, request.workspace, pk=channel_id)
    services.channel_delete(channel=channel, actor=request.user)
    messages.success(request, f"Alerts no longer go to {channel.name}.")
    return redirect("alert_channels:settings", request.workspace.slug)
