"""Sync runs and their log rows for support staff: read-only, and fast on tables of millions of rows.

Every list here is ordered by id (the primary key index; ids follow creation order), is not
sortable by column (a sort on an unindexed column reads the whole table), filters only on
fixed choices (a filter listing DISTINCT values would read the whole table), and counts
with LargeTablePaginator.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from integrations.destinations import REGISTRY
from integrations.sync import retry_failed
from lib.admin_tools import LargeTablePaginator, ReadOnlyAdmin, admin_link
from sync_logs.exchanges import exchange_body_pretty
from sync_logs.explain import KNOWN_CODES
from sync_logs.models import SyncExchange, SyncRecord, SyncRun


def _duration(run: SyncRun) -> str:
    if run.duration is None:
        return "—"
    seconds = int(run.duration.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {seconds:02d}s" if hours else f"{minutes}m {seconds:02d}s"


def _records_url(run_id: int, **filters: str) -> str:
    query = "&".join([f"run__id__exact={run_id}", *(f"{k}={v}" for k, v in filters.items())])
    return f"{reverse('admin:sync_logs_syncrecord_changelist')}?{query}"


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "workspace",
        "integration_kind",
        "trigger",
        "status",
        "created_at",
        "duration",
        "total",
        "delivered",
        "skipped",
        "failed",
        "records",
    )
    list_display_links = ("id",)
    list_filter = ("status", "trigger")
    list_select_related = ("integration__workspace",)
    # Exact search, so that it uses an index: a run id, or a workspace's slug.
    search_fields = ("=id",)
    search_help_text = "A run id, or a workspace's slug (exact)."
    ordering = ("-id",)
    sortable_by = ()
    show_full_result_count = False
    paginator = LargeTablePaginator
    actions = ["retry_failed_records"]
    fields = (
        "integration",
        "workspace",
        "trigger",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "duration",
        "worker",
        ("total", "delivered", "skipped", "failed"),
        "records",
        "exchanges",
        "error_summary",
    )
    readonly_fields = ("workspace", "duration", "records", "exchanges")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdecimal() and term.isascii():
            return queryset.filter(pk=int(term)), False
        return queryset.filter(integration__workspace__slug=term), False

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        # The workspace page links here with its runs.
        if lookup == "integration__workspace__id__exact":
            return True
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="Workspace")
    def workspace(self, run: SyncRun) -> str:
        workspace = run.integration.workspace
        return admin_link(reverse("admin:workspaces_workspace_change", args=[workspace.pk]), workspace.slug)

    @admin.display(description="Destination")
    def integration_kind(self, run: SyncRun) -> str:
        return run.integration.get_kind_display()

    @admin.display(description="Duration")
    def duration(self, run: SyncRun) -> str:
        return _duration(run)

    @admin.display(description="Log rows")
    def records(self, run: SyncRun) -> str:
        if not run.failed:
            return admin_link(_records_url(run.pk), "all")
        return format_html(
            '{} · <a href="{}">{} failed</a>',
            admin_link(_records_url(run.pk), "all"),
            _records_url(run.pk, status__exact="failed"),
            run.failed,
        )

    @admin.display(description="HTTP requests")
    def exchanges(self, run: SyncRun) -> str:
        url = f"{reverse('admin:sync_logs_syncexchange_changelist')}?run__id__exact={run.pk}"
        link = format_html('{} · <a href="{}&amp;status_class=failed">failed</a>', admin_link(url, "all"), url)
        if run.exchanges_dropped:
            return format_html("{} ({} more not kept)", link, run.exchanges_dropped)
        return link

    def has_retry_permission(self, request) -> bool:
        # Retrying changes the outbox, not the run: it needs the right to change integrations.
        return request.user.has_perm("integrations.change_integration")

    @admin.action(description="Retry the failed records of the selected runs", permissions=["retry"])
    def retry_failed_records(self, request, queryset) -> None:
        for run in queryset.select_related("integration__workspace"):
            result = retry_failed(integration=run.integration, actor=request.user, run=run)
            level = messages.SUCCESS if result.run else (messages.WARNING if result.count else messages.INFO)
            self.message_user(request, f"Run {run.pk}: {result.message}", level)


class ErrorCodeFilter(admin.SimpleListFilter):
    """Fixed choices: listing the codes in use would be a DISTINCT over every log row."""

    title = "error code"
    parameter_name = "error_code"

    def lookups(self, request, model_admin):
        codes = list(KNOWN_CODES)
        if self.value() and self.value() not in codes:
            codes.append(self.value())  # a code typed in the address shows as selected
        return [(code, code) for code in codes]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(error_code=self.value())
        return queryset


@admin.register(SyncRecord)
class SyncRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "identifier",
        "status",
        "error_code",
        "destination_code",
        "run_link",
        "workspace",
        "contact_link",
        "created_at",
    )
    list_display_links = ("id", "identifier")
    list_filter = ("status", ErrorCodeFilter)
    list_select_related = ("run__integration__workspace",)
    search_fields = ("=identifier",)
    search_help_text = "An email or another identifier, exactly as sent (case-insensitive for emails)."
    ordering = ("-id",)
    sortable_by = ()
    show_full_result_count = False
    paginator = LargeTablePaginator

    class Media:
        css = {"all": ("css/admin.css",)}  # a class for the payload: the CSP allows no inline style

    fields = (
        "run_link",
        "workspace",
        "contact_link",
        "identifier",
        "status",
        "error_code",
        "destination_code",
        "error_message",
        "retryable",
        "created_at",
        "payload_pretty",
    )
    readonly_fields = ("run_link", "workspace", "contact_link", "payload_pretty")

    def get_search_results(self, request, queryset, search_term):
        # The admin's own "=identifier" is iexact, i.e. UPPER(identifier) = UPPER(term): no plain index
        # serves it. An equality does, given the run (run, identifier), or an index on identifier.
        # Emails are sent lower-cased; another identifier is matched as typed.
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(identifier__in={term, term.lower()}), False

    @admin.display(description="Run")
    def run_link(self, record: SyncRecord) -> str:
        return admin_link(reverse("admin:sync_logs_syncrun_change", args=[record.run_id]), f"run {record.run_id}")

    @admin.display(description="Workspace")
    def workspace(self, record: SyncRecord) -> str:
        return record.run.integration.workspace.slug

    @admin.display(description="Contact")
    def contact_link(self, record: SyncRecord) -> str:
        if record.contact_id is None:
            return "—"
        return admin_link(
            reverse("admin:flows_contact_change", args=[record.contact_id]), f"contact {record.contact_id}"
        )

    @admin.display(description="Payload sent")
    def payload_pretty(self, record: SyncRecord) -> str:
        if record.payload is None:
            return "—"
        return format_html('<pre class="payload">{}</pre>', json.dumps(record.payload, indent=2, sort_keys=True))


class StatusClassFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status_class"

    def lookups(self, request, model_admin):
        return [
            ("2xx", "2xx"),
            ("4xx", "4xx"),
            ("429", "429"),
            ("5xx", "5xx"),
            ("none", "No answer"),
            ("failed", "Failed (no answer, 4xx, 5xx)"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value in ("2xx", "4xx", "5xx"):
            low = int(value[0]) * 100
            return queryset.filter(status__gte=low, status__lt=low + 100)
        if value == "429":
            return queryset.filter(status=429)
        if value == "none":
            return queryset.filter(status=None)
        if value == "failed":
            return queryset.filter(Q(status=None) | Q(status__gte=400))
        return queryset


class DestinationFilter(admin.SimpleListFilter):
    """The registry's kinds: listing the values in use would be a DISTINCT over every exchange."""

    title = "destination"
    parameter_name = "destination"

    def lookups(self, request, model_admin):
        return [(kind, REGISTRY[kind].label) for kind in REGISTRY]

    def queryset(self, request, queryset):
        return queryset.filter(destination=self.value()) if self.value() else queryset


@admin.register(SyncExchange)
class SyncExchangeAdmin(ReadOnlyAdmin):
    list_display = ("id", "run_link", "method", "endpoint", "status", "duration", "attempt", "created_at")
    list_display_links = ("id", "endpoint")
    list_filter = (StatusClassFilter, DestinationFilter)
    list_select_related = ("run__integration__workspace",)
    search_fields = ("endpoint",)
    search_help_text = "A run id (exact), or the start of an endpoint, with or without its method: POST /api/…"
    ordering = ("-id",)
    sortable_by = ()
    show_full_result_count = False
    paginator = LargeTablePaginator

    class Media:
        css = {"all": ("css/admin.css",)}  # a class for the bodies: the CSP allows no inline style

    fields = (
        "run_link",
        "workspace",
        "destination",
        ("method", "endpoint"),
        ("status", "error_code"),
        "error",
        "created_at",
        ("duration", "attempt", "budget_wait_ms", "retry_wait_ms"),
        "carried",
        "request_pretty",
        "response_pretty",
    )
    readonly_fields = ("run_link", "workspace", "duration", "carried", "request_pretty", "response_pretty")

    def get_search_results(self, request, queryset, search_term):
        # A run id walks the (run, id) index. An endpoint has no index of its own: its prefix is matched
        # newest first and the page stops at the first 100 found (LargeTablePaginator counts no further).
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdecimal() and term.isascii():
            return queryset.filter(run_id=int(term)), False
        method, _, path = term.partition(" ")
        if path and method.isupper():
            return queryset.filter(method=method, endpoint__startswith=path.strip()), False
        return queryset.filter(endpoint__startswith=term), False

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        if lookup == "run__id__exact":  # the run's page links here with its exchanges
            return True
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="Run")
    def run_link(self, exchange: SyncExchange) -> str:
        return admin_link(reverse("admin:sync_logs_syncrun_change", args=[exchange.run_id]), f"run {exchange.run_id}")

    @admin.display(description="Workspace")
    def workspace(self, exchange: SyncExchange) -> str:
        return exchange.run.integration.workspace.slug

    @admin.display(description="Duration")
    def duration(self, exchange: SyncExchange) -> str:
        return f"{exchange.duration_ms} ms"

    @admin.display(description="People carried")
    def carried(self, exchange: SyncExchange) -> str:
        shown = ", ".join(exchange.carries[:20])
        return f"{shown} … ({len(exchange.carries)} in all)" if len(exchange.carries) > 20 else shown or "—"

    @admin.display(description="Request body (masked, cut)")
    def request_pretty(self, exchange: SyncExchange) -> str:
        return format_html('<pre class="payload">{}</pre>', exchange_body_pretty(exchange.request_body) or "—")

    @admin.display(description="Answer body (masked, cut)")
    def response_pretty(self, exchange: SyncExchange) -> str:
        return format_html('<pre class="payload">{}</pre>', exchange_body_pretty(exchange.response_body) or "—")
