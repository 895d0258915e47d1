"""A sync run's exchange log: every HTTP try the run made with its destination, kept for support and the run page.

The transport shows each try to the run's recorder (destinations.http.HttpClient.recorder), from whichever thread
sent it (a push may send its parts side by side). :class:`ExchangeLog` is that recorder: it only decides whether a
try is kept and holds it in memory; the engine writes what it holds with one bulk insert at each batch's end and
when the run's slice ends, however it ends (integrations.engine._carry_out).

Bounded per run: the first EXCHANGE_LOG_MAX_PER_RUN tries are kept whatever they are (one endpoint's
successes taking at most half of them once the run calls another), then only failed ones (no answer, or a
status of 400 or more), up to as many again; the rest are counted on the run
(``SyncRun.exchanges_dropped``), so its page can say what it does not show. A run is carried by several slices,
perhaps in several processes: each slice's log starts from the count the database holds.

Exchanges are observations, not the run's books: they are not fenced, and writing them never fails a sync (an
error is logged, and those exchanges are lost).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, QuerySet, TextField
from django.db.models.functions import Cast

from lib import jsoncodec
from lib.batched import rows_delete_in_batches
from lib.logredact import redact
from sync_logs.models import SyncExchange, SyncRun
from workspaces.models import Workspace
from workspaces.scoping import scoped

if TYPE_CHECKING:
    from integrations.destinations.http import Exchange

logger = logging.getLogger(__name__)
ERASED = "(erased)"
_CUT = re.compile(r"… \(([\d,]+) more characters\)\Z")


class ExchangeLog:
    """One slice's recorder of one run's exchanges (thread-safe): what it keeps waits in memory for a flush."""

    def __init__(self, run_id: int, *, kept: int, limit: int, per_endpoint: Counter | None = None) -> None:
        self.run_id = run_id
        self.limit = limit
        self._kept = kept  # over the whole run: what the database held when this slice began, and this slice's
        # Successes kept per endpoint over the run: once a second endpoint is called, one endpoint takes at most
        # half the bound, so that a lookup per record (an existence check) cannot leave no room for the pushes.
        self._per_endpoint = per_endpoint if per_endpoint is not None else Counter()
        self._buffer: list[Exchange] = []
        self._dropped = 0  # not yet added to the run's count
        self._lock = threading.Lock()

    def __call__(self, exchange: Exchange) -> None:
        failed = exchange.status is None or exchange.status >= 400
        with self._lock:
            # Past the bound a failure is still worth keeping: it is what support looks for.
            endpoint = (exchange.method, exchange.endpoint)
            alone = set(self._per_endpoint) <= {endpoint}  # the only endpoint the run has called so far
            share = alone or self._per_endpoint[endpoint] < max(1, self.limit // 2)
            room = self._kept < self.limit and share
            if (room and not failed) or (failed and self._kept < 2 * self.limit):
                self._kept += 1
                if not failed:
                    self._per_endpoint[endpoint] += 1
                self._buffer.append(exchange)
            else:
                self._dropped += 1

    def take(self) -> tuple[list[Exchange], int]:
        """What waits to be written, and how many were dropped since the last flush; the log starts afresh."""
        with self._lock:
            taken, dropped = self._buffer, self._dropped
            self._buffer, self._dropped = [], 0
        return taken, dropped


def exchange_log_open(*, run_id: int) -> ExchangeLog:
    """A recorder for a slice of run ``run_id``, counting against the run's bound from what earlier slices kept
    (an index-only count on (run, id), of at most twice the bound)."""
    limit = max(0, settings.EXCHANGE_LOG_MAX_PER_RUN)
    try:
        kept = SyncExchange.objects.filter(run_id=run_id)[: 2 * limit].count() if limit else 0
        # Earlier slices' successes per endpoint (a run keeps a few thousand rows at most: one index range).
        succeeded = SyncExchange.objects.filter(run_id=run_id, status__lt=400).values_list("method", "endpoint")
        per_endpoint = Counter({(m, e): n for m, e, n in succeeded.annotate(n=Count("id")).order_by()})
    except Exception:  # the log is an observer: a sync goes on without it
        logger.exception("Sync run %s: its exchange log could not be counted; this slice keeps none", run_id)
        kept, per_endpoint = 2 * limit, Counter()
    return ExchangeLog(run_id, kept=kept, limit=limit, per_endpoint=per_endpoint)


def exchange_log_flush(log: ExchangeLog | None) -> int:
    """Write what ``log`` holds (one bulk insert) and add what it dropped to the run's count; the rows written.
    Never raises: an exchange log that cannot be written must not be why a sync fails. In a savepoint, so
    that a failed insert leaves a caller's transaction usable."""
    if log is None:
        return 0
    taken, dropped = log.take()
    if not taken and not dropped:
        return 0
    try:
        rows = [exchange_row(log.run_id, exchange) for exchange in taken]
        with transaction.atomic():
            SyncExchange.objects.bulk_create(rows, batch_size=500)
            if dropped:
                # Not fenced: a count of what was not kept, whoever holds the run now.
                SyncRun.objects.filter(pk=log.run_id).update(exchanges_dropped=F("exchanges_dropped") + dropped)
    except Exception:
        logger.exception("Sync run %s: %s exchanges could not be written to its exchange log", log.run_id, len(taken))
        return 0
    return len(rows)


def exchange_row(run_id: int, exchange: Exchange) -> SyncExchange:
    return SyncExchange(
        run_id=run_id,
        created_at=exchange.started_at,
        destination=exchange.destination[:20],
        method=exchange.method[:10],
        endpoint=exchange.endpoint[:200],
        status=exchange.status,
        error_code=exchange.error_code[:50],
        error=redact(exchange.error)[:500],
        duration_ms=_ms(exchange.seconds),
        attempt=min(exchange.attempt, 32767),
        budget_wait_ms=_ms(exchange.budget_wait),
        retry_wait_ms=_ms(exchange.retry_wait),
        request_body=exchange_body_text(exchange.request_body),
        response_body=exchange_body_text(exchange.response_body, parsed=True),
        carries=list(dict.fromkeys(c[:254] for c in exchange.carries if c)),
    )


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def exchange_body_text(body: Any, *, parsed: bool = False) -> str:
    """A body as the log keeps it: its text with secrets masked (lib.logredact), cut to EXCHANGE_LOG_BODY_CHARS
    and marked "… (N more characters)" when longer. ``parsed``: an answer's JSON value, encoded back to text.

    Only the first twice-the-limit characters are masked (a bulk body is megabytes; masking all of it would cost
    the sync): a secret cut at that edge could reach the kept part only if masking shortened the text by more
    than the limit."""
    if body is None:
        return ""
    if parsed:
        text = jsoncodec.dumps(body).decode()
    elif isinstance(body, bytes | bytearray | memoryview):
        text = bytes(body).decode("utf-8", "replace")
    else:
        text = str(body)
    limit = max(0, settings.EXCHANGE_LOG_BODY_CHARS)
    window = text[: 2 * limit]
    masked = redact(window)
    if len(masked) <= limit and len(window) == len(text):
        return masked
    more = len(masked) - limit + len(text) - len(window)
    return f"{masked[:limit]}… ({more:,} more characters)"


def exchange_body_pretty(text: str) -> str:
    """A stored body for reading: JSON indented, a cut one too (re-indented by its brackets, as far as it goes),
    its "… (N more characters)" on a line of its own."""
    if not text:
        return ""
    cut = _CUT.search(text)
    body, tail = (text[: cut.start()], "\n" + cut.group(0)) if cut else (text, "")
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False) + tail
    except ValueError:
        return _reindent(body) + tail


def _reindent(text: str) -> str:
    """JSON text that does not parse (cut short) laid out one value a line by its brackets and commas."""
    out: list[str] = []
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif char in "{[":
            depth += 1
            out.append(char + "\n" + "  " * depth)
        elif char in "}]":
            depth = max(0, depth - 1)
            out.append("\n" + "  " * depth + char)
        elif char == ",":
            out.append(",\n" + "  " * depth)
        elif char == ":":
            out.append(": ")
        elif not char.isspace():
            out.append(char)
    return "".join(out)


def exchanges_carrying(queryset: QuerySet[SyncExchange], identifiers: Iterable[str]) -> QuerySet[SyncExchange]:
    """The exchanges of ``queryset`` that carried any of ``identifiers``: the GIN index on PostgreSQL. On SQLite
    (JSON text) a match of each quoted identifier, which LIKE makes case-blind: callers needing exactness check
    ``carries`` again."""
    wanted = [i for i in dict.fromkeys(identifiers) if i]
    if not wanted:
        return queryset.none()
    if connection.vendor == "postgresql":
        return queryset.filter(carries__overlap=wanted)
    as_text = queryset.annotate(carries_text=Cast("carries", output_field=TextField()))
    query = None
    for identifier in wanted:
        one = as_text.filter(carries_text__contains=json.dumps(identifier))
        query = one if query is None else query | one
    return query


def exchanges_scrub(*, workspace: Workspace, identifiers: Iterable[str]) -> int:
    """Take erased people out of the workspace's exchanges: their identifiers leave ``carries``, and the bodies
    and error of every exchange that carried them go (a body holds their data, and a batch's others' with it;
    the timings and status stay). Returns the exchanges scrubbed."""
    wanted = {i for i in identifiers if i}
    found = exchanges_carrying(scoped(SyncExchange, workspace), wanted).only("id", "carries")
    rows = [row for row in found if wanted & set(row.carries)]
    for row in rows:
        row.carries = [c for c in row.carries if c not in wanted]
        row.request_body = row.response_body = ERASED
        row.error = ""
    SyncExchange.objects.bulk_update(rows, ["carries", "request_body", "response_body", "error"], batch_size=500)
    return len(rows)


def exchanges_purge(*, before, batch: int = 10_000) -> int:
    """Delete the exchanges made before ``before``, oldest first, ``batch`` per statement (the created_at index):
    short transactions, never one statement over millions of rows. Returns how many went."""
    return rows_delete_in_batches(
        SyncExchange._meta.db_table, "created_at < %s", [before], order="created_at", batch=batch
    )
