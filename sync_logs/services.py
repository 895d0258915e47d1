"""Sync-log upkeep: the CSV export of a run's log rows (retention is the ledger's, sync_logs.ledger)."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import TextField
from django.db.models.functions import Cast

from sync_logs.models import SyncRecord, SyncRun
from sync_logs.partitions import run_window

EXPORT_CHUNK = 2_000
# (CSV header, what is read for it): the first is the keyset cursor.
EXPORT_COLUMNS = [
    ("record_id", "id"),
    ("contact_id", "contact_id"),
    ("identifier", "identifier"),
    ("status", "status"),
    ("error_code", "error_code"),
    ("destination_code", "destination_code"),
    ("error_message", "error_message"),
    ("retryable", "retryable"),
    ("logged_at", "created_at"),
    ("payload", "payload_text"),
]


class _Line:
    """A file-like sink that hands back what csv.writer wrote, one line at a time."""

    def write(self, value: str) -> str:
        return value


def records_csv(run: SyncRun) -> Iterator[str]:
    """The run's log rows as CSV lines, read in keyset chunks: memory stays flat at any run size."""
    writer = csv.writer(_Line())
    yield writer.writerow([header for header, _ in EXPORT_COLUMNS])
    # The payload comes as the database's own JSON text: no parse and re-dump per row.
    rows = SyncRecord.objects.filter(run=run, **run_window(run)).order_by("id")
    rows = rows.annotate(payload_text=Cast("payload", TextField()))
    last = 0
    while True:
        chunk = list(rows.filter(id__gt=last).values_list(*(field for _, field in EXPORT_COLUMNS))[:EXPORT_CHUNK])
        if not chunk:
            return
        last = chunk[-1][0]
        for rid, contact_id, ident, status, code, own_code, message, retryable, at, payload in chunk:
            yield writer.writerow(
                [
                    rid,
                    contact_id or "",
                    _cell(ident),
                    status,
                    code,
                    _cell(own_code),
                    _cell(message),
                    "yes" if retryable else "no",
                    at.isoformat(),
                    "" if payload is None else _cell(payload),
                ]
            )


def _cell(value: str) -> str:
    """Captured text goes into a spreadsheet: a leading = + - @ would be read as a formula there."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
