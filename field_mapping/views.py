from __future__ import annotations

import json
from datetime import timedelta

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from field_mapping.forms import NEW, choices_from_post, initial_choices, initial_confirmation
from field_mapping.services import (
    SCHEMA_MAX_AGE,
    MappingInvalid,
    RowChoice,
    accepted_identifiers,
    mappable_fields,
    mapping_problems,
    mapping_save,
    mapping_type_warnings,
    mappings_from_choices,
    record_preview,
    schema_for,
    schema_refresh_requested,
    shared_targets,
    source_fields,
    validate_choices,
)
from flows.models import Contact
from integrations.destinations import destination_class
from integrations.models import Integration
from integrations.selectors import integration_by_kind, integration_setup
from workspaces.models import Role
from workspaces.scoping import get_object_in_workspace, scoped, workspace_view

PREVIEW_CONTACTS = 25


def _integration(request: HttpRequest, kind: str) -> Integration:
    integration = integration_by_kind(workspace=request.workspace, kind=kind)
    if integration is None or not integration.is_connected:
        raise Http404("Connect the destination first")
    return integration


def _preview_context(
    request: HttpRequest,
    integration: Integration,
    choices: list[RowChoice],
    available: dict[str, str],
    sources: list,
    confirm_shared: bool,
    schema_fields: dict[str, str],
) -> dict:
    contacts = list(
        scoped(Contact, request.workspace).select_related("flow").order_by("-created_at", "-id")[:PREVIEW_CONTACTS]
    )
    picked_id = request.POST.get("preview_contact") or request.GET.get("preview_contact")
    contact = None
    if picked_id:
        contact = get_object_in_workspace(Contact, request.workspace, pk=picked_id)
    elif contacts:
        contact = contacts[0]
    errors: dict[str, str] = {}
    try:
        validate_choices(
            integration=integration,
            choices=choices,
            available=available,
            sources=sources,
            confirm_shared=confirm_shared,
            schema_fields=schema_fields,
        )
    except MappingInvalid as exc:
        errors = exc.errors
    # A new field not named yet is being typed: no error for it before the admin has had a chance.
    pending = {c.source_key for c in choices if c.create_new and not c.target}
    errors = {key: message for key, message in errors.items() if key not in pending}
    # The preview shows what would be sent: a refused row, or one still being named, sends nothing.
    held_back = pending | set(errors)
    sendable = [RowChoice(c.source_key) if c.source_key in held_back else c for c in choices]
    warnings = mapping_type_warnings(integration=integration, choices=choices, available=available, sources=sources)
    built = body = None
    if contact is not None:
        mappings = mappings_from_choices(
            integration=integration, choices=sendable, available=available, sources=sources
        )
        built, body = record_preview(integration=integration, mappings=mappings, data=contact.data)
    return {
        "preview_contacts": contacts,
        "preview_contact": contact,
        "preview_record": built,
        "preview_body": json.dumps(body, indent=2, ensure_ascii=False) if body is not None else "",
        # Shown under each row's own input (out-of-band swaps), not in the preview column.
        "row_notes": [(s.key, errors.get(s.key, ""), warnings.get(s.key, "")) for s in sources],
        "row_errors": errors,
        "row_warnings": warnings,
        "preview_errors": {k: v for k, v in errors.items() if k in ("__all__", "__shared__")},
        "shared": shared_targets(choices),
        "confirm_shared": confirm_shared,
    }


def _render(
    request: HttpRequest,
    integration: Integration,
    *,
    choices: list[RowChoice],
    confirm_shared: bool,
    errors: dict[str, str],
    status: int = 200,
    template: str = "field_mapping/mapping.html",
    schema_max_age: timedelta | None = SCHEMA_MAX_AGE,
) -> HttpResponse:
    # The preview re-renders on every change: it works from the cached copy, so typing in the
    # form never spends the destination's budget for schema reads (a few per second per project).
    schema = schema_for(integration=integration, max_age=schema_max_age, interactive=True)
    available = dict(mappable_fields(schema))
    sources = source_fields(integration=integration)
    by_key = {c.source_key: c for c in choices}
    problems = mapping_problems(mappings=list(integration.mappings.all()), schema=schema)
    preview = _preview_context(request, integration, choices, available, sources, confirm_shared, schema.fields)
    rows = []
    for s in sources:
        choice = by_key.get(s.key, RowChoice(s.key))
        rows.append(
            {
                "source": s,
                "choice": choice,
                # A saved target the fetched fields lack (drift, or no schema yet) stays selected, so the
                # page shows the mapping as saved instead of silently offering "Don't sync".
                "unlisted": bool(choice.target) and not choice.create_new and choice.target not in available,
                "error": errors.get(s.key) or preview["row_errors"].get(s.key),
                "warning": preview["row_warnings"].get(s.key),
                "problem": problems.get(s.key),
            }
        )
    context = {
        "integration": integration,
        "destination": destination_class(integration.kind),
        "setup": integration_setup(integration=integration, on="mapping"),
        "schema": schema,
        "available": list(available.items()),  # the catalogue's order: identifiers first
        "rows": rows,
        "identifiers": accepted_identifiers(integration),
        "identifier_names": destination_class(integration.kind).identifier_names,
        "destination_summary": integration.destination_summary,
        "errors": errors,
        "NEW": NEW,
        **preview,
    }
    return render(request, template, context, status=status)


@workspace_view(min_role=Role.ADMIN)
def mapping_step(request: HttpRequest, kind: str) -> HttpResponse:
    integration = _integration(request, kind)
    if request.method == "POST":
        sources = source_fields(integration=integration)
        choices, confirm_shared = choices_from_post(request.POST, sources)
        try:
            mapping_save(integration=integration, actor=request.user, choices=choices, confirm_shared=confirm_shared)
        except MappingInvalid as exc:
            return _render(
                request, integration, choices=choices, confirm_shared=confirm_shared, errors=exc.errors, status=400
            )
        messages.success(request, "Field mapping saved.")
        if "continue" in request.POST:  # the setup's next step, or its summary once every step is done
            nxt = "integrations:setup-summary" if integration.sync_configured_at else "integrations:sync-settings"
            return redirect(nxt, request.workspace.slug, kind)
        return redirect("field_mapping:mapping", request.workspace.slug, kind)
    schema = schema_for(integration=integration, interactive=True)
    saved = list(integration.mappings.all())
    choices = initial_choices(
        source_fields(integration=integration),
        saved,
        dict(mappable_fields(schema)),
        destination_class(integration.kind).suggested_targets,
    )
    confirm_shared = initial_confirmation(choices, saved)
    return _render(request, integration, choices=choices, confirm_shared=confirm_shared, errors={})


@workspace_view(min_role=Role.ADMIN)
@require_POST
def mapping_preview(request: HttpRequest, kind: str) -> HttpResponse:
    """The preview panel for the form as it is now (unsaved): htmx swaps it in on every change."""
    integration = _integration(request, kind)
    choices, confirm_shared = choices_from_post(request.POST, source_fields(integration=integration))
    return _render(
        request,
        integration,
        choices=choices,
        confirm_shared=confirm_shared,
        errors={},
        template="field_mapping/mapping.html#preview",
        schema_max_age=None,
    )


@workspace_view(min_role=Role.ADMIN)
@require_POST
def schema_refresh_view(request: HttpRequest, kind: str) -> HttpResponse:
    integration = _integration(request, kind)
    schema, fetched = schema_refresh_requested(integration=integration)
    name = integration.get_kind_display()
    if not fetched:
        copy = f"the copy fetched {timesince(schema.fetched_at)} ago" if schema.fetched_at else "what there is"
        messages.info(request, f"{name}'s fields were fetched moments ago (or are being fetched): showing {copy}.")
    elif schema.last_error:
        messages.error(request, f"Could not fetch {name}'s fields: {schema.last_error} The last copy is kept.")
    else:
        messages.success(request, f"Fetched {len(schema.fields)} fields from {name}.")
    return redirect("field_mapping:mapping", request.workspace.slug, kind)
