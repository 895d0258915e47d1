"""Reading sync logs: run lists, a run's records (keyset pages), one contact's history.

Every query starts from :func:`workspaces.scoping.scoped` or from an object that was
fetched through it. Pages are keyset pages on ``id`` (never OFFSET, never COUNT):
a deep page of a million-row run costs what the first one does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from flows.models import Contact
from integrations.models import Integration, OutboxItem
from lib.charts import Chart, stacked_bars
from sync_logs.exchanges import exchanges_carrying
from sync_logs.models import SyncExchange, SyncRecord, SyncRun
from sync_logs.partitions import run_window
from workspaces.models import Workspace
from workspaces.scoping import scoped

RUNS_PAGE_SIZE = 25
RECORDS_PAGE_SIZE = 50
STATUS_FILTERS = [s.value for s in SyncRecord.Status]
EXCHANGES_PAGE_SIZE = 25
# The run page's filters of its requests: value (the ``requests`` GET parameter) -> label.
EXCHANGE_FILTERS = {"": "All", "failed": "Failed", "429": "429", "slow": "Slow"}


@dataclass
class KeysetPage:
    """One page of rows in id order, with the ids to ask for the pages around it."""

    items: list[Any]
    next_after: int | None = None  # ?after=<id> gives the next page
    prev_before: int | None = None  # ?before=<id> gives the previous page
    filters: dict[str, str] = field(default_factory=dict)


def _keyset(qs: QuerySet, *, after: int | None, before: int | None, size: int, newest_first: bool) -> KeysetPage:
    """A page of ``qs`` in id order (descending with ``newest_first``); ``after``/``before`` are the
    ids at the edge of the page the reader comes from, in display order."""
    forward = "-id" if newest_first else "id"
    backward = "id" if newest_first else "-id"
    beyond = "id__lt" if newest_first else "id__gt"  # further along the display order
    behind = "id__gt" if newest_first else "id__lt"
    if before is not None:
        rows = list(qs.filter(**{behind: before}).order_by(backward)[: size + 1])
        more_behind = len(rows) > size
        rows = rows[:size][::-1]
        page = KeysetPage(rows)
        if rows:
            page.prev_before = rows[0].id if more_behind else None
            page.next_after = rows[-1].id if qs.filter(**{beyond: rows[-1].id}).exists() else None
        return page
    qs_page = qs.filter(**{beyond: after}) if after is not None else qs
    rows = list(qs_page.order_by(forward)[: size + 1])
    page = KeysetPage(rows[:size])
    if len(rows) > size:
        page.next_after = rows[size - 1].id
    if after is not None and page.items and qs.filter(**{behind: page.items[0].id}).exists():
        page.prev_before = page.items[0].id
    return page


def runs_page(*, integration: Integration, after: int | None = None, before: int | None = None) -> KeysetPage:
    """An integration's runs, newest first."""
    qs = SyncRun.objects.filter(integration=integration)
    return _keyset(qs, after=after, before=before, size=RUNS_PAGE_SIZE, newest_first=True)


# The shortest search that matches any part of an identifier: the trigram index (migration 0010)
# has nothing to look up in one or two characters, so those match the start, from the prefix index.
SEARCH_ANY_PART_MIN = 3


def search_prefix(q: str) -> str:
    """What a short identifier search matches: a prefix, lower-cased when it is (part of) an email
    (captured emails are stored lower-cased; other identifiers keep their case)."""
    q = q.strip()[:254]
    return q.lower() if "@" in q or q.islower() else q


def identifier_search(q: str) -> Q:
    """The rows whose identifier holds ``q`` anywhere, in any case (the trigram index); under
    SEARCH_ANY_PART_MIN characters, those it starts with (the prefix index)."""
    q = q.strip()[:254]
    if len(q) < SEARCH_ANY_PART_MIN:
        return Q(identifier__startswith=search_prefix(q))
    return Q(identifier__icontains=q)


def records_page(
    *,
    run: SyncRun,
    status: str = "",
    q: str = "",
    after: int | None = None,
    before: int | None = None,
    size: int = RECORDS_PAGE_SIZE,
) -> KeysetPage:
    """A run's log rows in the order they were written, filtered by status and by any part of the identifier.

    Each filter combination is an index range scan: (run, id) (for "delivered" too: nearly every row
    of a run is), (run, status, id) for the rows not delivered, or for a search the identifier's trigram
    index (its prefix index under three characters) when the planner finds it matches few rows, else
    (run, id) in order until a page is found; on PostgreSQL only in the partitions of the run's days.
    """
    qs = SyncRecord.objects.filter(run=run, **run_window(run)).defer("payload")
    filters: dict[str, str] = {}
    if status in STATUS_FILTERS:
        qs = qs.filter(status=status)
        filters["status"] = status
    if q.strip():
        qs = qs.filter(identifier_search(q))
        filters["q"] = q.strip()
    page = _keyset(qs, after=after, before=before, size=size, newest_first=False)
    page.filters = filters
    return page


def record_in_run(*, run: SyncRun, record_id: int) -> SyncRecord | None:
    return SyncRecord.objects.filter(run=run, pk=record_id, **run_window(run)).select_related("contact").first()


@dataclass
class ContactDestination:
    """Where one contact stands with one integration now, and every attempt on the way."""

    integration: Integration
    outbox: OutboxItem | None
    attempts: list[SyncRecord]


def contact_history(*, workspace: Workspace, contact: Contact, limit: int = 50) -> list[ContactDestination]:
    """ "Where did my contact go?": per integration, the contact's queue state and its log rows, newest first."""
    integrations = list(scoped(Integration, workspace).order_by("kind"))
    outbox = {o.integration_id: o for o in OutboxItem.objects.filter(contact=contact, integration__in=integrations)}
    records = (
        SyncRecord.objects.filter(contact=contact, run__integration__in=integrations)
        .select_related("run")
        .order_by("-created_at", "-id")[:limit]
    )
    by_integration: dict[int, list[SyncRecord]] = {}
    for record in records:
        by_integration.setdefault(record.run.integration_id, []).append(record)
    return [ContactDestination(i, outbox.get(i.pk), by_integration.get(i.pk, [])) for i in integrations]


def delivered_per_day(*, workspace: Workspace, days: int = 14) -> list[tuple[date, int]]:
    """Contacts delivered on each of the last ``days`` days (UTC) over the workspace's integrations, oldest
    first: the runs' own counts summed by the day each finished (no log row is read)."""
    today = timezone.now().date()
    since = timezone.now() - timedelta(days=days)
    rows = (
        scoped(SyncRun, workspace)
        .filter(finished_at__gte=since)
        .annotate(day=TruncDate("finished_at", tzinfo=UTC))
        .values("day")
        .annotate(n=Sum("delivered"))
        .values_list("day", "n")
    )
    counts = dict(rows)
    return [(day, counts.get(day) or 0) for day in (today - timedelta(days=i) for i in range(days - 1, -1, -1))]


def runs_chart(*, integration: Integration, limit: int = 30) -> Chart:
    """The last ``limit`` finished runs, oldest first, as bars of delivered, skipped and failed."""
    runs = list(integration.runs.exclude(finished_at=None).order_by("-created_at", "-id")[:limit])[::-1]
    columns = [
        (
            f"#{run.pk} {run.finished_at:%b %-d %H:%M}",
            {"delivered": run.delivered, "skipped": run.skipped, "failed": run.failed},
        )
        for run in runs
    ]
    return stacked_bars(columns, ("delivered", "skipped", "failed"))


def _exchange_filter(show: str) -> Q | None:
    if show == "failed":
        return Q(status=None) | Q(status__gte=400)
    if show == "429":
        return Q(status=429)
    if show == "slow":
        return Q(duration_ms__gte=settings.EXCHANGE_LOG_SLOW_MS)
    return None


def exchanges_page(
    *,
    run: SyncRun,
    show: str = "",
    after: int | None = None,
    before: int | None = None,
    size: int = EXCHANGES_PAGE_SIZE,
) -> KeysetPage:
    """A run's HTTP exchanges in the order they were made, all or those of one filter (EXCHANGE_FILTERS).

    No index per filter: the (run, id) index walks the run's exchanges, of which there are at most twice
    EXCHANGE_LOG_MAX_PER_RUN (sync_logs.exchanges), so a filter that matches few reads a few thousand rows.
    """
    qs = SyncExchange.objects.filter(run=run).defer("request_body", "response_body", "carries")
    page_filter = _exchange_filter(show)
    if page_filter is not None:
        qs = qs.filter(page_filter)
    page = _keyset(qs, after=after, before=before, size=size, newest_first=False)
    page.filters = {"requests": show} if page_filter is not None else {}
    return page


def exchange_in_run(*, run: SyncRun, exchange_id: int) -> SyncExchange | None:
    return SyncExchange.objects.filter(run=run, pk=exchange_id).first()


def exchanges_of_record(*, run: SyncRun, record: SyncRecord, limit: int = 20) -> list[SyncExchange]:
    """The requests of the record's run that carried its person (a lookup, the push, its retries, a list
    subscription, an event), first one first: the carried identifiers' GIN index on PostgreSQL."""
    if not record.identifier:
        return []
    found = exchanges_carrying(SyncExchange.objects.filter(run=run), [record.identifier])
    found = found.defer("request_body", "response_body").order_by("id")[:limit]
    return [exchange for exchange in found if record.identifier in exchange.carries]
