"""CSV export streams a run of any size; retention deletes only old log rows (tests/sync_logs/test_partitions.py:\nthe daily partitions it drops)."""

from __future__ import annotations

import csv
import io
import tracemalloc
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sync_logs import ledger, partitions, services
from sync_logs.models import SyncRecord, SyncRun
from tests.sync_logs.factories import run_with_records

pytestmark = pytest.mark.django_db


def test_export_has_a_row_per_record(alice_client, integration, logs_url):
    run = run_with_records(integration, 25, failed_every=5)
    response = alice_client.get(logs_url(f"runs/{run.pk}/export.csv"))
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert f"run-{run.pk}.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 25
    assert sum(r["status"] == "failed" for r in rows) == 5
    first_failed = next(r for r in rows if r["status"] == "failed")
    assert first_failed["error_code"] == "type_mismatch"
    assert (
        first_failed["destination_code"] == "RequestFieldsTypesMismatched" and '"age": "ten"' in first_failed["payload"]
    )


def _export_peak(run) -> tuple[int, int, int]:
    """Lines, bytes and the peak of Python memory while streaming a run's export."""
    tracemalloc.start()
    try:
        size = lines = 0
        for line in services.records_csv(run):
            size += len(line)
            lines += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return lines, size, peak


def test_export_streams_a_large_run_in_bounded_memory(integration):
    small_lines, _, small_peak = _export_peak(run_with_records(integration, 6_000))
    lines, size, peak = _export_peak(run_with_records(integration, 30_000))
    assert (small_lines, lines) == (6_001, 30_001)  # the header and one line per record
    # Five times the rows, the same memory: one chunk is held at a time, never the run.
    assert peak < small_peak * 1.5 and peak < size / 2, (small_peak, peak, size)


def test_export_reads_in_chunks(integration):
    run = run_with_records(integration, 5_000)
    with CaptureQueriesContext(connection) as queries:
        assert sum(1 for _ in services.records_csv(run)) == 5_001
    selects = [q for q in queries.captured_queries if "sync_logs_syncrecord" in q["sql"]]
    assert len(selects) == 4 and all("LIMIT 2000" in q["sql"] for q in selects)  # 3 chunks and the empty end


def test_export_defuses_spreadsheet_formulas(integration):
    run = run_with_records(integration, 0)
    SyncRecord.objects.create(run=run, identifier="=HYPERLINK(1)", status="failed", error_message="+1")
    text = "".join(services.records_csv(run))
    assert "'=HYPERLINK(1)" in text and ",'+1," in text


def _age(run: SyncRun, days: int) -> None:
    SyncRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days))


def test_retention_deletes_the_legacy_partitions_old_rows_in_batches(integration, settings):
    """Rows from before partitioning (the legacy partition) go per run, in batches, as they always did."""
    settings.SYNC_LOG_RETENTION_DAYS = 90
    cutoff = timezone.now() - timedelta(days=90)
    boundary = partitions.day_start(cutoff.date())
    with connection.cursor() as cursor:  # what migration 0006 leaves on a database that had rows
        cursor.execute(f"CREATE TABLE {partitions.LEGACY} (LIKE {partitions.TABLE} INCLUDING DEFAULTS)")
        cursor.execute(
            f"ALTER TABLE {partitions.TABLE} ATTACH PARTITION {partitions.LEGACY} FOR VALUES FROM (MINVALUE) TO (%s)",
            [boundary + timedelta(days=2)],
        )
    old = run_with_records(integration, 25, at=cutoff - timedelta(days=5))
    recent = run_with_records(integration, 7, at=cutoff + timedelta(hours=1))
    with CaptureQueriesContext(connection) as queries:
        deleted = ledger.sync_logs_purge(batch=10)
    assert deleted == 25
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(f"DELETE FROM {partitions.LEGACY}")]
    assert len(deletes) == 3  # 10 + 10 + 5
    assert not SyncRecord.objects.filter(run=old).exists()
    assert SyncRecord.objects.filter(run=recent).count() == 7
    old.refresh_from_db()
    recent.refresh_from_db()
    assert old.total == 25 and old.logs_purged_at is not None  # the summary stays
    assert recent.logs_purged_at is None
    assert ledger.sync_logs_purge(batch=10) == 0  # done once


def test_retention_leaves_active_runs_alone(integration):
    active = run_with_records(integration, 3, status="running")
    _age(active, 400)
    assert ledger.sync_logs_purge() == 0 and SyncRecord.objects.filter(run=active).count() == 3


def test_purged_run_says_so(alice_client, integration, logs_url):
    run = run_with_records(integration, 3, at=timezone.now() - timedelta(days=100))
    ledger.sync_logs_purge()
    html = alice_client.get(logs_url(f"runs/{run.pk}/")).content.decode()
    assert "deleted by retention" in html


def test_retention_runs_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["sync-logs-purge"]
    assert entry["task"] == "sync_logs.tasks.sync_logs_purge_task"
