from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from flows.models import CaptureToken, Contact, ConversionFlow
from workspaces.models import Workspace
from workspaces.scoping import scoped

CHART_CACHE_SECONDS = 300


def flows_for(*, workspace: Workspace) -> QuerySet[ConversionFlow]:
    return scoped(ConversionFlow, workspace).annotate(field_count=Count("fields", distinct=True))


def active_capture_token(*, workspace: Workspace) -> CaptureToken | None:
    return scoped(CaptureToken, workspace).filter(revoked_at=None).first()


@dataclass
class ContactPage:
    contacts: list[Contact]
    next_cursor: str | None


def _encode_cursor(contact: Contact) -> str:
    raw = f"{contact.created_at.isoformat()}|{contact.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[dt.datetime, int] | None:
    try:
        stamp, pk = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return dt.datetime.fromisoformat(stamp), int(pk)
    except (ValueError, UnicodeDecodeError):
        return None


def contacts_page(
    *, workspace: Workspace, q: str = "", flow_public_id: str = "", cursor: str = "", size: int = 50
) -> ContactPage:
    """Newest first, keyset-paged on (created_at, id): no OFFSET, no COUNT(*)."""
    queryset = scoped(Contact, workspace).select_related("flow")
    q = q.strip().lower()
    if q:
        queryset = queryset.filter(email__startswith=q)
    if flow_public_id:
        queryset = queryset.filter(flow__public_id=flow_public_id)
    position = _decode_cursor(cursor) if cursor else None
    if position:
        stamp, pk = position
        queryset = queryset.filter(Q(created_at__lt=stamp) | Q(created_at=stamp, id__lt=pk))
    rows = list(queryset.order_by("-created_at", "-id")[: size + 1])
    next_cursor = _encode_cursor(rows[size - 1]) if len(rows) > size else None
    return ContactPage(contacts=rows[:size], next_cursor=next_cursor)


def contacts_per_day(*, workspace: Workspace, days: int = 14) -> list[tuple[dt.date, int]]:
    """Contacts captured on each of the last ``days`` days (UTC), oldest first, days without any included.

    One GROUP BY over the range of the workspace's newest-first index; cached for a few minutes, since a
    busy workspace's fortnight is many index entries and the overview is opened often."""
    today = timezone.now().date()
    key = f"contacts-per-day:{workspace.pk}:{today}:{days}"
    counts = cache.get(key)
    if counts is None:
        since = timezone.now() - dt.timedelta(days=days)
        rows = (
            scoped(Contact, workspace)
            .filter(created_at__gte=since)
            .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
            .values("day")
            .annotate(n=Count("id"))
            .values_list("day", "n")
        )
        counts = dict(rows)
        cache.set(key, counts, timeout=CHART_CACHE_SECONDS)
    return [(day, counts.get(day, 0)) for day in (today - dt.timedelta(days=i) for i in range(days - 1, -1, -1))]
