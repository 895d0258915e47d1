"""sync_logs' 0006 partitions the log table by day on PostgreSQL: every row stays (in the legacy partition, whose
indexes are adopted, not rebuilt), ids go on past the old ones, and it goes back to one plain table again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from integrations.models import Integration
from sync_logs import partitions
from sync_logs.models import SyncRun
from tests.migrating import migrate_to, migrate_to_latest
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("sync_logs", "0006_run_slice_token")]
AFTER = [("sync_logs", "0007_partition_sync_records")]
TABLE = partitions.TABLE


def _fetch(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _rows() -> list[tuple]:
    return _fetch(f"SELECT id, run_id, identifier, status, payload::text, created_at FROM {TABLE} ORDER BY id")


def _insert(run_id: int, identifier: str, created_at) -> tuple[int, str]:
    """A row written the way the previous release writes it: by the table's name, the id left to the table."""
    return _fetch(
        f"INSERT INTO {TABLE} (run_id, identifier, status, error_code, error_message, retryable, payload, "
        "created_at) VALUES (%s, %s, 'delivered', '', '', false, '{\"a\": 1}', %s) RETURNING id, tableoid::regclass::text",
        [run_id, identifier, created_at],
    )[0]


def _index_oids(table: str) -> dict[str, int]:
    return dict(
        _fetch(
            "SELECT c.relname, c.oid::int FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = to_regclass(%s)",
            [table],
        )
    )


def test_the_rows_stay_through_the_partitioning_and_back():
    migrate_to(BEFORE)
    try:
        # Today's models for the other tables: only the log table's shape changes here.
        workspace = Workspace.objects.create(name="Old", slug="old")
        integration = Integration.objects.create(workspace=workspace, kind="iterable")
        now = timezone.now()
        # The run by its columns at BEFORE: today's model has columns added since (planned).
        (run_id,) = _fetch(
            f"INSERT INTO {SyncRun._meta.db_table} (integration_id, trigger, status, created_at, worker, slice_token, "
            "total, delivered, skipped, failed, error_summary) "
            "VALUES (%s, 'manual', 'succeeded', %s, '', 0, 0, 0, 0, 0, '') RETURNING id",
            [integration.pk, now],
        )[0]
        run = SyncRun(pk=run_id)
        for i in range(30):
            _insert(run.pk, f"user{i:02d}@example.com", now - timedelta(days=i))
        before, old_last = _rows(), _rows()[-1][0]
        indexes = _index_oids(TABLE)

        migrate_to(AFTER)
        assert _fetch("SELECT relkind FROM pg_class WHERE relname = %s", [TABLE]) == [("p",)]
        assert _rows() == before
        with connection.cursor() as cursor:
            found = {p.name: p for p in partitions.partitions(cursor)}
        legacy = found[partitions.LEGACY]
        assert legacy.lower is None and legacy.upper > now + timedelta(hours=1)  # the cut-over: a midnight ahead
        assert legacy.upper == partitions.day_start(legacy.upper.date())
        assert partitions.DEFAULT in found
        ahead = [p for p in found.values() if p.lower is not None]
        assert ahead and ahead[0].lower == legacy.upper  # daily partitions from the cut-over on
        # The old table's indexes were adopted by the partitioned table's, not built again (same oids).
        kept = _index_oids(partitions.LEGACY)
        for name in ("record_run_id", "record_identifier", "record_contact", "record_run_undelivered"):
            assert kept[f"{name}_legacy"] == indexes[name]
        assert set(_index_oids(TABLE)) >= {"record_run_id", "record_identifier", "record_contact", f"{TABLE}_pkey"}
        # One foreign key per column on the old rows (adopted, not added twice).
        assert (
            len(
                _fetch(
                    "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'f'",
                    [partitions.LEGACY],
                )
            )
            == 2
        )

        # The previous release goes on writing to the same name: the id follows, the row lands by its time.
        new_id, where = _insert(run.pk, "during@example.com", now)
        assert new_id > old_last and where == partitions.LEGACY
        later_id, where = _insert(run.pk, "later@example.com", legacy.upper + timedelta(hours=2))
        assert later_id > new_id and where == partitions.day_name(legacy.upper.date())
        far_id, where = _insert(run.pk, "far@example.com", now + timedelta(days=400))
        assert where == partitions.DEFAULT
        after = _rows()
        assert len(after) == 33

        migrate_to(BEFORE)  # and back: one plain table with every row, (id) its key, ids going on
        assert _fetch("SELECT relkind FROM pg_class WHERE relname = %s", [TABLE]) == [("r",)]
        assert _rows() == after
        assert _fetch("SELECT to_regclass(%s), to_regclass(%s)", [partitions.LEGACY, partitions.DEFAULT]) == [
            (None, None)
        ]
        assert _fetch(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'",
            [TABLE],
        ) == [("PRIMARY KEY (id)",)]
        assert set(_index_oids(TABLE)) >= {"record_run_id", "record_identifier", "record_contact", f"{TABLE}_pkey"}
        assert _insert(run.pk, "back@example.com", now)[0] > far_id

        migrate_to(AFTER)  # forward again on a table holding rows written before and after
        assert len(_rows()) == 34
    finally:
        # The next tests start from a new database's shape: partitioned from an empty table, no legacy partition.
        migrate_to(BEFORE)
        _fetch(f"DELETE FROM {TABLE} RETURNING id")
        migrate_to_latest()
        assert _fetch("SELECT to_regclass(%s)", [partitions.LEGACY]) == [(None,)]


def test_a_new_database_starts_with_daily_partitions_and_no_legacy_one():
    with connection.cursor() as cursor:
        found = partitions.partitions(cursor)
    names = {p.name for p in found}
    assert partitions.LEGACY not in names and partitions.DEFAULT in names
    assert partitions.day_name(timezone.now().date()) in names
