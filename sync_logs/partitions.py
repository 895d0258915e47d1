"""The sync-log table's partitions on PostgreSQL: their names and ranges, read from the catalog.

``sync_logs_syncrecord`` is partitioned by RANGE on ``created_at``, one partition per UTC day
(``sync_logs_syncrecord_p20250601`` holds [2025-06-01, 2025-06-02)), plus:

- ``sync_logs_syncrecord_legacy``: the table as it was before partitioning (migration 0006),
  holding every row from before its cut-over, [MINVALUE, cut-over);
- ``sync_logs_syncrecord_default``: the DEFAULT partition, so that a write never fails when the
  partition of its day was not made ahead (ledger.log_partitions_ensure moves such rows out).

Why a day: retention is counted in days (SYNC_LOG_RETENTION_DAYS), so a daily partition is
dropped at most one day later than the retention allows, and at hundreds of millions of rows
over 90 days a day is a few million rows: a DROP frees it at once, and the few queries that
cannot prune by time (support's search by identifier, one contact's history) probe ~100 small
indexes, not a handful of huge ones, which EXPLAIN shows costs them a few milliseconds.

The catalog (pg_inherits, relpartbound) is the one source of truth for the ranges: no name is
parsed for a date, so a partition made by hand or by an older release is read the same way.
On SQLite the table is plain and none of this applies (``is_partitioned`` is False).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

TABLE = "sync_logs_syncrecord"
LEGACY = f"{TABLE}_legacy"
DEFAULT = f"{TABLE}_default"
# Every DDL on the partitions (ensure, purge, the migration) holds this advisory lock: two of
# them at once (the beat's and a deploy's migrate) would race on the same name or range.
MAINTENANCE_LOCK = 0x5F10_6001
# How long a partition DDL waits for its lock before giving up until the next tick: while it
# waits, every query on the table queues behind it, so it must never wait behind a long one.
LOCK_TIMEOUT = "3s"


def lock_not_granted(exc: Exception) -> bool:
    """Whether a DDL gave up on its lock (lock_timeout): the next tick tries again; anything else is a bug."""
    return getattr(exc.__cause__, "sqlstate", None) == "55P03"


_BOUND = re.compile(r"FROM \((?P<lower>[^)]*)\) TO \((?P<upper>[^)]*)\)")


@dataclass(frozen=True)
class Partition:
    name: str
    lower: datetime | None  # None: MINVALUE (the legacy partition), or the DEFAULT partition
    upper: datetime | None
    is_default: bool = False

    def overlaps(self, lower: datetime, upper: datetime) -> bool:
        if self.is_default:
            return False
        return (self.lower is None or self.lower < upper) and (self.upper is None or lower < self.upper)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def day_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def day_range(day: date) -> tuple[datetime, datetime]:
    return day_start(day), day_start(day + timedelta(days=1))


def is_partitioned(cursor) -> bool:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
    row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def _bound(text: str) -> datetime | None:
    text = text.strip()
    if text.upper() in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(text.strip("'"))


def partitions(cursor) -> list[Partition]:
    """The table's partitions, oldest range first, the DEFAULT partition last."""
    cursor.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        [TABLE],
    )
    found = []
    for name, bound in cursor.fetchall():
        if bound == "DEFAULT":
            found.append(Partition(name, None, None, is_default=True))
            continue
        match = _BOUND.search(bound)
        if match is None:  # not a range over one column: not one of ours
            continue
        found.append(Partition(name, _bound(match["lower"]), _bound(match["upper"])))
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(found, key=lambda p: (p.is_default, p.lower or datetime.min.replace(tzinfo=UTC), p.upper or far))


# How far a log row's time may stray from its run's: the run's times and its rows' come from
# different machines' clocks (the beat or web process that made it, the worker that wrote them).
CLOCK_SLACK = timedelta(hours=1)


def run_window(run) -> dict[str, datetime]:
    """Lookups on ``created_at`` that hold for every log row of ``run``, to add to a query by run so
    that PostgreSQL reads only the partitions of the run's time span (the day or two it ran),
    not every day's index. A run's rows are all written while it runs (every write is fenced on
    its lease), between its creation and its finish; ``CLOCK_SLACK`` either side."""
    window = {"created_at__gte": run.created_at - CLOCK_SLACK}
    if run.finished_at is not None and run.status not in run.ACTIVE:
        window["created_at__lte"] = run.finished_at + CLOCK_SLACK
    return window


def index_create_online(cursor, name: str, definition: str) -> None:
    """Index the partitioned table without blocking its writers: CREATE INDEX CONCURRENTLY does not
    apply to a partitioned table, so the parent's index is made ON ONLY the parent (invalid, empty),
    each partition's concurrently, and each attached; the parent's turns valid with the last one.

    ``definition`` follows the table name (``USING gin (upper(identifier) gin_trgm_ops)``). Run in
    autocommit (a migration with ``atomic = False``). Idempotent, and resumable: a partition whose
    index is attached already is skipped, an invalid one left by an interrupted build is made again.
    A partition made meanwhile (ledger.log_partitions_ensure) gets the index when it is attached.
    """
    cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON ONLY {TABLE} {definition}")
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) AND NOT EXISTS ("
        "  SELECT 1 FROM pg_inherits ii JOIN pg_index x ON x.indexrelid = ii.inhrelid"
        "  WHERE ii.inhparent = to_regclass(%s) AND x.indrelid = c.oid)",
        [TABLE, name],
    )
    for (partition,) in cursor.fetchall():
        child = f"{partition}_{name.removeprefix('record_')}"[:63]
        cursor.execute(
            "SELECT NOT x.indisvalid FROM pg_index x WHERE x.indexrelid = to_regclass(%s)",
            [child],
        )
        row = cursor.fetchone()
        if row and row[0]:
            cursor.execute(f"DROP INDEX CONCURRENTLY {child}")
        cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {child} ON {partition} {definition}")
        cursor.execute(f"ALTER INDEX {name} ATTACH PARTITION {child}")
