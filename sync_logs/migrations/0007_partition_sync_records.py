"""The sync-log table becomes partitioned by day on PostgreSQL, keeping every row (see sync_logs/partitions.py).

Built for a rolling deploy: the previous release keeps writing (COPY, bulk_create) to the same
table name with the same columns throughout.

1. Online, while the old release writes: a unique index on (id, created_at) (the partitioned
   table's primary key must hold the partition key) and a CHECK (created_at < cut-over), added
   NOT VALID and then validated (neither blocks writes). The cut-over is a UTC midnight at least
   an hour away, so that the old release's rows, stamped "now", still pass the CHECK until the swap.
2. The swap, in one short transaction (catalog changes only; a lock timeout and retries, so it
   never queues the table's readers behind a long query): the table and its indexes take the
   ``_legacy`` names, the partitioned table is created under the old name with the same columns,
   indexes and foreign keys, and the legacy table is attached for [MINVALUE, cut-over). PostgreSQL
   reuses the legacy table's matching indexes, primary key and foreign keys and skips the scan
   (the CHECK proves the range): nothing is rebuilt. The id sequence continues past the old one.
   An empty table (a new database) is dropped instead: its daily partitions start today.
3. The DEFAULT partition, and the daily partitions from the cut-over on (ledger.log_partitions_ensure).

The model's state does not change: Django keeps ``id`` as the primary key (ids stay unique through
the identity); the database's key is (id, created_at). No foreign key points at this table.
SQLite keeps its plain table: nothing happens there.

Backward: the rows of the daily and DEFAULT partitions move into the legacy table, which takes the
old name again with its (id) primary key (indexed online first) and an identity past every id.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, OperationalError, migrations, transaction

TABLE = "sync_logs_syncrecord"
LEGACY = f"{TABLE}_legacy"
DEFAULT = f"{TABLE}_default"
CHECK = f"{LEGACY}_range"
LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout: tried again; any other error stops the migration
UNIQUE = f"{LEGACY}_pkey"  # becomes the legacy partition's primary key
ID_ONLY = f"{TABLE}_id_only"  # backward: the plain table's (id) key, built online
COLUMNS = (
    "id, identifier, status, error_code, error_message, retryable, payload, created_at, contact_id, run_id, "
    "destination_code"
)
# The indexes of SyncRecord.Meta (their names stay the parent's; the legacy table's take a suffix).
INDEXES = {
    "record_run_id": "(run_id, id)",
    "record_run_undelivered": "(run_id, status, id) WHERE NOT status = 'delivered'",
    "record_identifier": "(identifier varchar_pattern_ops)",
    "record_contact": "(contact_id, created_at DESC)",
}
FOREIGN_KEYS = {
    "run_id": ("sync_logs_syncrun", "id"),
    "contact_id": ("flows_contact", "id"),
}


def _cut_over(now: datetime) -> datetime:
    return datetime.combine((now + timedelta(hours=1)).date() + timedelta(days=1), datetime.min.time(), UTC)


def _relkind(cursor, name: str) -> str | None:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [name])
    row = cursor.fetchone()
    return row[0] if row else None


def _index_valid(cursor, name: str) -> bool | None:
    cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
    row = cursor.fetchone()
    return row[0] if row else None


def _build_online(cursor, name: str, table: str, definition: str) -> None:
    """CREATE UNIQUE INDEX CONCURRENTLY, again if an earlier attempt left it invalid."""
    if _index_valid(cursor, name) is False:
        cursor.execute(f"DROP INDEX CONCURRENTLY {name}")
    if _index_valid(cursor, name) is None:
        cursor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} {definition}")


def _foreign_keys(cursor, table: str) -> dict[str, str]:
    """column -> constraint name of the table's foreign keys."""
    cursor.execute(
        "SELECT a.attname, c.conname FROM pg_constraint c JOIN pg_attribute a "
        "ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] WHERE c.conrelid = to_regclass(%s) AND c.contype = 'f'",
        [table],
    )
    return dict(cursor.fetchall())


def _range_checked(connection, cut_over: datetime) -> bool:
    """Add the CHECK (created_at < cut_over) and validate it; False when a row is past it."""

    def add(cursor) -> None:  # ADD and DROP CONSTRAINT lock the table for a moment: a short wait at most
        cursor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {CHECK}")  # an earlier attempt's
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {CHECK} CHECK (created_at < %s) NOT VALID", [cut_over])

    _in_short_transactions(connection, add)
    try:
        with connection.cursor() as cursor:  # a scan, but writes go on (SHARE UPDATE EXCLUSIVE)
            cursor.execute(f"ALTER TABLE {TABLE} VALIDATE CONSTRAINT {CHECK}")
    except IntegrityError:
        return False
    return True


def _last_id(cursor) -> int:
    """The highest id handed out: the identity's last value, or a row's id above it."""
    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}")  # the end of an index on id
    last = cursor.fetchone()[0]
    cursor.execute(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')")
    sequence = cursor.fetchone()[0]
    if sequence:
        cursor.execute(f"SELECT last_value FROM {sequence}")  # noqa: S608 - the catalog's name
        last = max(last, cursor.fetchone()[0])
    return last


def _in_short_transactions(connection, step, attempts: int = 10) -> None:
    """Run ``step(cursor)`` in a transaction that waits at most a few seconds for its locks, retried:
    waiting longer would stop every reader and writer of the table queued behind it."""
    for attempt in range(attempts):
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '3s'")
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [0x5F10_6001])
                # The rows moved back must be checked now: ALTER TABLE refuses a table with pending checks.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                step(cursor)
            return
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE or attempt == attempts - 1:
                raise
            time.sleep(1 + attempt)


def forwards(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        if _relkind(cursor, TABLE) == "p":
            return  # done already (a re-run after a failure further on)
        _build_online(cursor, UNIQUE, TABLE, "(id, created_at)")
    cut_over = _cut_over(datetime.now(UTC))
    while not _range_checked(connection, cut_over):
        # Rows dated past it (written after a migration back, say): the cut-over goes past the last one.
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT max(created_at) FROM {TABLE}")  # noqa: S608 - fixed names
            cut_over = max(cut_over, _cut_over(cursor.fetchone()[0]))

    def swap(cursor) -> None:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        last = _last_id(cursor)
        keys = _foreign_keys(cursor, TABLE)
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {LEGACY}")
        for name in INDEXES:
            cursor.execute(f"ALTER INDEX IF EXISTS {name} RENAME TO {name}_legacy")
        # The primary key must be (id, created_at) to match the parent's: the unique index built
        # above takes over from the (id) one, which goes (no foreign key points at it).
        cursor.execute(f"ALTER TABLE {LEGACY} DROP CONSTRAINT {TABLE}_pkey")
        cursor.execute(f"ALTER TABLE {LEGACY} ADD CONSTRAINT {UNIQUE} PRIMARY KEY USING INDEX {UNIQUE}")
        cursor.execute(f"ALTER TABLE {LEGACY} ALTER COLUMN id DROP IDENTITY IF EXISTS")
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {LEGACY} INCLUDING DEFAULTS) PARTITION BY RANGE (created_at)")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {last + 1})")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, created_at)")
        for column, (target, target_column) in FOREIGN_KEYS.items():
            # The legacy table's own key has the same definition: ATTACH adopts it, nothing is checked again.
            name = keys.get(column, f"{TABLE}_{column}_fk")
            cursor.execute(
                f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
                f"REFERENCES {target} ({target_column}) DEFERRABLE INITIALLY DEFERRED"
            )
        for name, definition in INDEXES.items():
            cursor.execute(f"CREATE INDEX {name} ON {TABLE} {definition}")
        cursor.execute(f"SELECT EXISTS (SELECT FROM {LEGACY})")  # noqa: S608 - fixed names
        if cursor.fetchone()[0]:
            cursor.execute(
                f"ALTER TABLE {TABLE} ATTACH PARTITION {LEGACY} FOR VALUES FROM (MINVALUE) TO (%s)", [cut_over]
            )
        else:  # a new database (or one that never synced): nothing to keep, daily partitions from today
            cursor.execute(f"DROP TABLE {LEGACY}")
        cursor.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {TABLE} DEFAULT")

    _in_short_transactions(connection, swap)

    from sync_logs.ledger import log_partitions_ensure  # today's code: idempotent, reads the catalog

    log_partitions_ensure()


def backwards(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        if _relkind(cursor, TABLE) != "p":
            return
        has_legacy = _relkind(cursor, LEGACY) is not None
        if has_legacy:
            _build_online(cursor, ID_ONLY, LEGACY, "(id)")

    def unswap(cursor) -> None:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        last = _last_id(cursor)
        keys = _foreign_keys(cursor, TABLE)
        if has_legacy:
            cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {LEGACY}")
            cursor.execute(f"ALTER TABLE {LEGACY} DROP CONSTRAINT IF EXISTS {CHECK}")
        else:  # made on an empty table: the plain table is made again, empty, to take the rows
            cursor.execute(f"CREATE TABLE {LEGACY} (LIKE {TABLE} INCLUDING DEFAULTS)")
            cursor.execute(f"ALTER TABLE {LEGACY} ADD CONSTRAINT {UNIQUE} PRIMARY KEY (id, created_at)")
            cursor.execute(f"CREATE UNIQUE INDEX {ID_ONLY} ON {LEGACY} (id)")
            for name, definition in INDEXES.items():
                cursor.execute(f"CREATE INDEX {name}_legacy ON {LEGACY} {definition}")
            for column, (target, target_column) in FOREIGN_KEYS.items():
                cursor.execute(
                    f"ALTER TABLE {LEGACY} ADD CONSTRAINT {keys[column]}_legacy FOREIGN KEY ({column}) "
                    f"REFERENCES {target} ({target_column}) DEFERRABLE INITIALLY DEFERRED"
                )
        # Every row written since the cut-over (the daily partitions and DEFAULT) back into the one table.
        cursor.execute(f"INSERT INTO {LEGACY} ({COLUMNS}) SELECT {COLUMNS} FROM {TABLE}")  # noqa: S608 - fixed names
        cursor.execute(f"DROP TABLE {TABLE}")  # and its partitions, emptied above
        cursor.execute(f"ALTER TABLE {LEGACY} RENAME TO {TABLE}")
        for name in INDEXES:
            cursor.execute(f"ALTER INDEX IF EXISTS {name}_legacy RENAME TO {name}")
        if not has_legacy:
            for column in FOREIGN_KEYS:
                cursor.execute(f"ALTER TABLE {TABLE} RENAME CONSTRAINT {keys[column]}_legacy TO {keys[column]}")
        cursor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT {UNIQUE}")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY USING INDEX {ID_ONLY}")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {last + 1})")

    _in_short_transactions(connection, unswap)


class Migration(migrations.Migration):
    atomic = False  # indexes built concurrently; the swap manages its own short transaction

    dependencies = [
        ("sync_logs", "0006_run_slice_token"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
