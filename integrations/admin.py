"""Integrations for support staff: find one, see why it is stuck, and act on it.

SECURITY: credentials are never shown or editable here; only the last 4 characters of a key.
The page is read-only: every change goes through an action below, which calls the same
service as the app's own buttons and is audited.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html_join

from flows.models import Contact
from integrations.models import Integration, OutboxItem
from integrations.services import integration_reverify
from integrations.sync import (
    SyncNotStarted,
    backfill_reset,
    integration_pause,
    integration_resume,
    retry_failed,
    sync_now,
)
from lib import deadline
from lib.admin_tools import admin_link, capped_count_text
from workspaces.services import audit_record

REVERIFY_AT_ONCE = 20  # integrations one "Re-verify connection" checks; each is a few calls to the destination


def _audit(request, integration: Integration, verb: str, **data) -> None:
    """An event for what a service did not record itself (a refusal, an unreachable destination)."""
    audit_record(
        workspace=integration.workspace,
        actor=request.user,
        verb=f"admin.{verb}",
        target=integration.get_kind_display(),
        data={"staff": True, "integration": integration.pk, **data},
    )


class PausedFilter(admin.SimpleListFilter):
    title = "paused"
    parameter_name = "paused"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(paused_at=None)
        if self.value() == "no":
            return queryset.filter(paused_at=None)
        return queryset


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "workspace_link",
        "kind",
        "status",
        "paused",
        "auth_method",
        "masked_key",
        "destination_summary",
        "frequency",
        "verified_at",
        "runs_link",
    )
    list_display_links = ("id", "kind")
    list_filter = ("kind", "status", PausedFilter, "auth_method")
    list_select_related = ("workspace",)
    search_fields = ("workspace__slug", "workspace__name", "key_last4")
    search_help_text = "A workspace's slug or name, or the last 4 characters of a key."
    exclude = ("credentials",)
    actions = ["start_sync", "pause", "resume", "retry_failed_records", "reverify", "reset_backfill"]
    fieldsets = (
        (None, {"fields": ("workspace", "kind", "status", "paused_at", "error_code", "error_message", "error_since")}),
        (
            "Connection",
            {
                "fields": (
                    "auth_method",
                    "masked_key",
                    "destination_summary",
                    "config",
                    "connected_by",
                    "connected_at",
                    "verified_at",
                )
            },
        ),
        (
            "Sync settings",
            {"fields": ("frequency", "next_run_at", "overwrite_existing")},
        ),
        ("Queue and runs", {"fields": ("queue", "runs_link")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # Everything: a hand-edited status or schedule would skip the services and the audit trail.
        names = [f.name for f in Integration._meta.fields if f.name not in ("id", "credentials")]
        return [*names, "masked_key", "destination_summary", "queue", "runs_link"]

    def has_add_permission(self, request) -> bool:
        return False  # integrations are connected by the workspace's admin, with a verified key

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting would take the sync history with it; disconnecting is the workspace's call

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Nothing on the page is editable, so no save buttons.
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- Columns and read-only fields --------------------------------------------------------------

    @admin.display(description="Workspace", ordering="workspace__slug")
    def workspace_link(self, obj: Integration) -> str:
        return admin_link(reverse("admin:workspaces_workspace_change", args=[obj.workspace_id]), obj.workspace.slug)

    @admin.display(description="Paused", boolean=True)
    def paused(self, obj: Integration) -> bool:
        return obj.is_paused

    @admin.display(description="Key")
    def masked_key(self, obj: Integration) -> str:
        return obj.masked_key or ("OAuth" if obj.auth_method == Integration.AuthMethod.OAUTH else "—")

    @admin.display(description="Runs")
    def runs_link(self, obj: Integration) -> str:
        return admin_link(f"{reverse('admin:sync_logs_syncrun_changelist')}?integration__id__exact={obj.pk}", "runs")

    @admin.display(description="Outbox")
    def queue(self, obj: Integration) -> str:
        # One count per status, each capped at 10,000 rows: pending and failed rows have partial
        # indexes of their own; the others are read through (integration, contact), never past the cap.
        rows = OutboxItem.objects.filter(integration=obj)
        return format_html_join(
            ", ",
            "{}: {}",
            ((label, capped_count_text(rows.filter(status=value))) for value, label in OutboxItem.Status.choices),
        )

    # --- Actions: each calls the service the app's own button calls, with the staff user as actor ------

    def _each(self, queryset):
        return queryset.select_related("workspace").order_by("pk")

    def _refuse(self, request, integration: Integration, action: str, reason: str) -> None:
        _audit(request, integration, "action_refused", action=action, reason=reason)
        self.message_user(request, f"{integration}: {reason}", messages.WARNING)

    @admin.action(description="Sync now", permissions=["change"])
    def start_sync(self, request, queryset) -> None:
        for integration in self._each(queryset):
            try:
                run = sync_now(integration=integration, actor=request.user)  # audited: integration.sync_started
            except SyncNotStarted as exc:
                self._refuse(request, integration, "sync_now", exc.message)
                continue
            self.message_user(request, f"{integration}: sync started (run {run.pk}).", messages.SUCCESS)

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request, queryset) -> None:
        for integration in self._each(queryset):
            if integration.is_paused:
                self._refuse(request, integration, "pause", "already paused.")
                continue
            integration_pause(integration=integration, actor=request.user)  # audited: integration.paused
            self.message_user(
                request,
                f"{integration}: paused. Captured contacts keep queueing until it is resumed.",
                messages.SUCCESS,
            )

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request, queryset) -> None:
        for integration in self._each(queryset):
            if not integration.is_paused:
                self._refuse(request, integration, "resume", "not paused.")
                continue
            integration_resume(integration=integration, actor=request.user)  # audited: integration.resumed
            self.message_user(request, f"{integration}: resumed.", messages.SUCCESS)

    @admin.action(description="Retry failed records", permissions=["change"])
    def retry_failed_records(self, request, queryset) -> None:
        for integration in self._each(queryset):
            # Audited: integration.retry_requested (and integration.sync_started when a run starts).
            result = retry_failed(integration=integration, actor=request.user)
            level = messages.SUCCESS if result.run else (messages.WARNING if result.count else messages.INFO)
            self.message_user(request, f"{integration}: {result.message}", level)

    @admin.action(description="Re-verify connection", permissions=["change"])
    def reverify(self, request, queryset) -> None:
        # Each check calls the destination inside this request: a few at a time, within the request's
        # deadline (lib.deadline), and the staff member is told which were left.
        total = queryset.count()
        checked = 0
        for integration in self._each(queryset)[:REVERIFY_AT_ONCE]:
            left = deadline.remaining()
            if left is not None and left <= 0:
                break
            checked += 1
            if not integration.is_connected:
                # Checking no credentials would mark the integration broken for nothing.
                self._refuse(request, integration, "reverify", "not connected.")
                continue
            # Audited by the service when the destination answered: integration.verified / verify_failed.
            if integration_reverify(integration=integration, actor=request.user):
                self.message_user(request, f"{integration}: the connection works.", messages.SUCCESS)
            elif integration.status == Integration.Status.NEEDS_ATTENTION:
                self.message_user(request, f"{integration}: {integration.error_message}", messages.ERROR)
            else:
                _audit(request, integration, "integration_reverify_unreachable", message=integration.error_message)
                self.message_user(request, f"{integration}: {integration.error_message}", messages.WARNING)
        if checked < total:
            self.message_user(
                request,
                f"{total - checked} of the {total} selected integrations were not checked: at most "
                f"{REVERIFY_AT_ONCE} are re-verified at once, within {settings.DESTINATION_WEB_DEADLINE_SECONDS} s. "
                "Select the others and run the action again.",
                messages.WARNING,
            )

    @admin.action(description="Reset backfill: queue every contact again", permissions=["change"])
    def reset_backfill(self, request, queryset):
        # Sends every contact of the workspace again: a confirmation page first, like "delete selected".
        if request.POST.get("confirmed") != "yes":
            integrations = list(self._each(queryset))
            return TemplateResponse(
                request,
                "admin/integrations/integration/reset_backfill_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Reset backfill?",
                    "opts": self.model._meta,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                    "rows": [
                        (i, capped_count_text(Contact.objects.filter(workspace_id=i.workspace_id)))
                        for i in integrations
                    ],
                },
            )
        for integration in self._each(queryset):
            if not integration.is_connected:
                # Queueing contacts for a destination with no credentials only grows the outbox.
                self._refuse(request, integration, "reset_backfill", "not connected.")
                continue
            # Audited: integration.backfill_reset (and integration.sync_started when a run starts).
            result = backfill_reset(integration=integration, actor=request.user)
            level = messages.SUCCESS if result.run else (messages.WARNING if result.count else messages.INFO)
            self.message_user(request, f"{integration}: {result.message}", level)
        return None
