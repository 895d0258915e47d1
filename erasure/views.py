"""Workspace settings > Privacy: erase a person, and every erasure request with what was done."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from erasure import selectors, services
from erasure.forms import ErasureForm
from erasure.models import ErasureRequest, ErasureStep
from workspaces.models import Role
from workspaces.scoping import get_object_in_workspace, workspace_view


@workspace_view(min_role=Role.ADMIN)
def privacy(request: HttpRequest) -> HttpResponse:
    form = ErasureForm(request.POST or None, initial={"email": request.GET.get("email", "")})
    if request.method == "POST" and form.is_valid():
        done = services.erasure_request(
            workspace=request.workspace,
            email=form.cleaned_data["email"],
            via=ErasureRequest.Via.APP,
            actor=request.user,
            forget=form.cleaned_data["forget"],
        )
        messages.success(request, _summary(done))
        return redirect("erasure:privacy", request.workspace.slug)
    context = {"form": form, "requests": selectors.erasure_requests_recent(workspace=request.workspace)}
    return render(request, "erasure/privacy.html", context, status=400 if form.errors else 200)


def _summary(done: ErasureRequest) -> str:
    steps = done.steps.count()
    contacts = f"{done.contacts_erased} contact{'s' if done.contacts_erased != 1 else ''}"
    destinations = (
        f"{steps} destination{'s' if steps != 1 else ''} will be asked to delete them"
        if steps
        else ("no destination to ask")
    )
    return f"Erasure #{done.pk}: {contacts} deleted, their sync-log data removed; {destinations}."


@workspace_view(min_role=Role.ADMIN)
@require_POST
def erasure_step_retry_view(request: HttpRequest, step_id: int) -> HttpResponse:
    step = get_object_in_workspace(ErasureStep.objects.select_related("request"), request.workspace, pk=step_id)
    services.erasure_step_retry(step=step, actor=request.user)
    messages.success(request, f"{step.destination_label} will be asked again now.")
    return redirect("erasure:privacy", request.workspace.slug)
