"""Helpers that keep admin pages fast on tables of millions of rows.

The admin's changelist counts its rows on every page view. On PostgreSQL ``COUNT(*)``
reads the whole table (or index), which takes seconds at tens of millions of rows.
``show_full_result_count = False`` only drops the second count (of the unfiltered
table); the count of the filtered list is still taken, so the paginator below makes
that one cheap too.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property
from django.utils.html import format_html

# Counting stops here: "10,000 rows" is as useful to support as the exact figure.
COUNT_CAP = 10_000


def capped_count(queryset: QuerySet, cap: int | None = None) -> int:
    """``min(queryset.count(), cap + 1)``, reading at most ``cap + 1`` rows (COUNT over a LIMITed subquery)."""
    cap = cap or COUNT_CAP
    return queryset.order_by()[: cap + 1].count()


def capped_count_text(queryset: QuerySet, cap: int | None = None) -> str:
    cap = cap or COUNT_CAP
    n = capped_count(queryset, cap)
    return f"{cap:,}+" if n > cap else f"{n:,}"


def table_estimate(queryset: QuerySet) -> int | None:
    """The planner's row estimate for the queryset's table (PostgreSQL, kept fresh by autovacuum), else None."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    # -1: never analysed (PostgreSQL 14+); then the estimate says nothing.
    return row[0] if row and row[0] >= 0 else None


class LargeTablePaginator(Paginator):
    """A paginator whose count never reads a huge table.

    Unfiltered on PostgreSQL, the count is the planner's estimate when the table is big
    (an exact count is cheap below that); otherwise counting stops at ``COUNT_CAP``,
    so the pages stop there too (narrow the list with a filter or a search to go further).
    Works unchanged on SQLite, where it only caps.
    """

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return super().count
        if not qs.query.where:
            estimate = table_estimate(qs)
            if estimate is not None and estimate > COUNT_CAP:
                return estimate
        return min(capped_count(qs), COUNT_CAP)


def admin_link(url: str, text: object) -> str:
    return format_html('<a href="{}">{}</a>', url, text)


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records the app writes and nobody edits by hand: sync logs, audit events."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
