"""Runs with many log rows, written the way the engine writes them (COPY on PostgreSQL)."""

from __future__ import annotations

from django.utils import timezone

from sync_logs.ledger import records_write
from sync_logs.models import SyncRun

MISMATCH = "Iterable has 'age' as long, the value sent was 'ten' (string)"


def run_with_records(integration, count: int, *, failed_every: int = 0, contact=None, at=None, **run_fields) -> SyncRun:
    """A finished run of ``count`` rows, user0000@example.com and on; every ``failed_every``-th row failed.
    ``at``: when it ran (made, started, finished, and its rows' time), now by default."""
    now = timezone.now() if at is None else at
    rows = []
    for i in range(count):
        failed = failed_every and i % failed_every == 0
        rows.append(
            (
                None,
                contact.pk if contact else None,
                f"user{i:04d}@example.com",
                "failed" if failed else "delivered",
                "type_mismatch" if failed else "",
                "RequestFieldsTypesMismatched" if failed else "",
                MISMATCH if failed else "",
                False,
                {"email": f"user{i:04d}@example.com", "dataFields": {"age": "ten" if failed else 30}},
                now,
            )
        )
    failed = sum(1 for r in rows if r[3] == "failed")
    fields = {
        "trigger": "manual",
        "status": "partial" if failed else "succeeded",
        "started_at": now,
        "finished_at": now,
        "total": count,
        "delivered": count - failed,
        "failed": failed,
        **run_fields,
    }
    run = SyncRun.objects.create(integration=integration, **fields)
    if at is not None:
        SyncRun.objects.filter(pk=run.pk).update(created_at=at)
        run.created_at = at
    records_write([(run.pk, *row[1:]) for row in rows])
    return run
