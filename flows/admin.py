from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from erasure.models import ErasureRequest
from erasure.services import erasure_request
from flows.models import CaptureToken, Contact, ConversionFlow, FlowField
from lib.admin_tools import LargeTablePaginator, admin_link
from sync_logs.selectors import contact_history

# Log rows shown on a contact's page: the latest few tell the story; the log viewer has the rest.
RECENT_RECORDS = 20


class FlowFieldInline(admin.TabularInline):
    model = FlowField
    extra = 0


@admin.register(ConversionFlow)
class ConversionFlowAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "public_id", "is_enabled", "created_at")
    list_filter = ("is_enabled",)
    list_select_related = ("workspace",)
    search_fields = ("name", "public_id", "workspace__slug", "workspace__name")
    raw_id_fields = ("workspace",)
    inlines = [FlowFieldInline]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("id", "email", "workspace", "flow", "source", "created_at")
    list_display_links = ("id", "email")
    list_filter = ("source",)
    list_select_related = ("workspace", "flow")
    search_fields = ("=email",)
    search_help_text = "An email address (exact, across every workspace), or a workspace's slug."
    raw_id_fields = ("workspace", "flow")
    fields = (
        "workspace",
        "flow",
        "email",
        "source",
        "created_at",
        "data",
        "consents",
        "confirm_sent_at",
        "confirmed_at",
        "where_it_went",
    )
    readonly_fields = fields
    # Millions of rows: the primary key order, no sorting by column, no COUNT(*) of the table.
    ordering = ("-id",)
    sortable_by = ()
    show_full_result_count = False
    paginator = LargeTablePaginator

    actions = ["erase_people"]

    def has_change_permission(self, request, obj=None) -> bool:  # contacts are immutable
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # A bare delete would leave the person in the sync logs and at every destination: erase instead.
        return False

    def has_erase_permission(self, request) -> bool:
        return request.user.has_perm("flows.delete_contact")

    @admin.action(
        description="Erase these people (here, in the sync logs and at each destination)", permissions=["erase"]
    )
    def erase_people(self, request, queryset) -> None:
        chosen = list(queryset.select_related("workspace"))
        people = {(c.workspace_id, c.email) for c in chosen if c.email}
        workspaces = {c.workspace_id: c.workspace for c in chosen}
        if without := sum(1 for c in chosen if not c.email):
            self.message_user(
                request, f"{without} contact(s) without an email were left: erase a person by email.", messages.WARNING
            )
        for workspace_id, email in sorted(people):
            done = erasure_request(
                workspace=workspaces[workspace_id], email=email, via=ErasureRequest.Via.ADMIN, actor=request.user
            )
            self.message_user(
                request,
                f"Erasure #{done.pk} in {workspaces[workspace_id].slug}: {done.contacts_erased} contact(s) deleted; "
                f"{done.steps.count()} destination(s) asked.",
                messages.SUCCESS,
            )

    def get_search_results(self, request, queryset, search_term):
        # Equalities only: the admin's "=email" is iexact (UPPER(email) = UPPER(...)), which no plain
        # index serves. Emails are stored lower-cased (lib.emails.normalize_email).
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            return queryset.filter(email=term.lower()), False
        return queryset.filter(workspace__slug=term), False

    @admin.display(description="Where it went")
    def where_it_went(self, contact: Contact) -> str:
        """Per integration its outbox row (queued, delivered, failed and why), then the latest log rows."""
        if contact.pk is None:
            return "—"
        # The same selector as the contact's page in the app ("Where it went"), for its workspace.
        history = contact_history(workspace=contact.workspace, contact=contact, limit=RECENT_RECORDS)
        outbox = [dest.outbox for dest in history if dest.outbox is not None]
        records = sorted(
            (record for dest in history for record in dest.attempts), key=lambda r: (r.created_at, r.id), reverse=True
        )
        kinds = {dest.integration.pk: dest.integration.get_kind_display() for dest in history}
        outbox_rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    admin_link(
                        reverse("admin:integrations_integration_change", args=[o.integration_id]), o.integration
                    ),
                    o.get_status_display(),
                    o.attempts,
                    o.error_code or "—",
                    o.error_message or "",
                    o.updated_at.strftime("%Y-%m-%d %H:%M:%S") if o.updated_at else "",
                )
                for o in outbox
            ),
        )
        record_rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    admin_link(
                        reverse("admin:sync_logs_syncrecord_change", args=[r.pk]),
                        r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    ),
                    admin_link(reverse("admin:sync_logs_syncrun_change", args=[r.run_id]), f"run {r.run_id}"),
                    kinds[r.run.integration_id],
                    r.get_status_display(),
                    " / ".join(c for c in (r.error_code, r.destination_code) if c) or "—",
                    r.error_message or "",
                )
                for r in records
            ),
        )
        return format_html(
            "<table><thead><tr><th>Integration</th><th>Outbox</th><th>Attempts</th><th>Error</th><th>Message</th>"
            "<th>Updated</th></tr></thead><tbody>{}</tbody></table>"
            "<p>Latest log rows (newest first, at most {}):</p>"
            "<table><thead><tr><th>When</th><th>Run</th><th>Destination</th><th>Status</th><th>Error</th>"
            "<th>Message</th></tr></thead><tbody>{}</tbody></table>",
            outbox_rows or format_html('<tr><td colspan="6">{}</td></tr>', "Not queued for any integration."),
            RECENT_RECORDS,
            record_rows or format_html('<tr><td colspan="6">{}</td></tr>', "No sync log rows yet."),
        )


@admin.register(CaptureToken)
class CaptureTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "workspace", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("workspace",)
    search_fields = ("prefix", "workspace__slug")
    readonly_fields = ("workspace", "prefix", "created_at", "created_by", "last_used_at")
    exclude = ("token_hash",)
