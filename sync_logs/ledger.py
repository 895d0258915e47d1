"""The sync ledger: a run's life and its log rows, in one place.

A run is created (one active per integration: a partial unique index decides races),
started by the worker that takes it, finished with its counts, or closed as abandoned
by the reaper when its worker stops answering; its log rows are written in bulk in the
transaction of their batch (integrations.engine) and purged after the retention: on
PostgreSQL whole daily partitions dropped, the partitions made ahead by log_partitions_ensure
(sync_logs/partitions.py). The engine decides what happens to contacts; this module keeps the books.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from integrations.lease import LeaseLost
from integrations.models import Integration, OutboxItem
from lib import jsoncodec, metrics
from lib.batched import rows_delete_in_batches
from sync_logs import partitions
from sync_logs.exchanges import exchanges_purge
from sync_logs.models import SyncRecord, SyncRun

logger = logging.getLogger(__name__)
Status = OutboxItem.Status


def run_create(*, integration: Integration, trigger: str) -> SyncRun | None:
    """A queued run for ``integration``; None when one is active already."""
    try:
        with transaction.atomic():
            return SyncRun.objects.create(integration=integration, trigger=trigger)
    except IntegrityError:
        return None


def runs_create(*, integration_ids: Sequence[int], trigger: str, now: datetime) -> list[int]:
    """Queued runs for many integrations at once (the schedule's tick); the ids of the runs made.

    An integration with a run still queued or running gets none: on PostgreSQL one
    ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` whose arbiter is the partial unique
    index on active runs (so a Sync Now racing the tick makes one of the two wait, then
    win or give way, as run_create's race does); elsewhere (SQLite, ./run's default) one
    run_create each.
    """
    if not integration_ids:
        return []
    if connection.vendor != "postgresql":
        return _runs_create_one_by_one(integration_ids, trigger)
    return _runs_create_set_based(integration_ids, trigger, now)


def _runs_create_set_based(integration_ids: Sequence[int], trigger: str, now: datetime) -> list[int]:
    # Every column the ORM's create would fill: the model's defaults live in Python, not in the table.
    # The conflict target names the index's own predicate, so no other constraint is silenced.
    active = ", ".join(f"'{status}'" for status in SyncRun.ACTIVE)
    sql = (
        f"INSERT INTO {SyncRun._meta.db_table} (integration_id, trigger, status, created_at, worker, "  # noqa: S608 - names from the model, values as parameters
        "total, delivered, skipped, failed, error_summary) "
        "SELECT due.id, %s, %s, %s, '', 0, 0, 0, 0, '' FROM unnest(%s::bigint[]) AS due(id) "
        f"ON CONFLICT (integration_id) WHERE status IN ({active}) DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [trigger, SyncRun.Status.QUEUED, now, list(integration_ids)])
        return [row[0] for row in cursor.fetchall()]


def _runs_create_one_by_one(integration_ids: Sequence[int], trigger: str) -> list[int]:
    made = []
    for integration_id in integration_ids:
        try:
            with transaction.atomic():
                made.append(SyncRun.objects.create(integration_id=integration_id, trigger=trigger).pk)
        except IntegrityError:
            continue  # one is active already
    return made


def runs_withdraw(*, run_ids: Sequence[int]) -> list[int]:
    """Delete the runs of ``run_ids`` still queued, whose task may never have reached a worker (one that
    gets it after finds no run and does nothing); the integrations they were for."""
    with transaction.atomic():
        # Locked first: a worker starting one meanwhile (run_start) waits, then finds it gone.
        queued = SyncRun.objects.select_for_update().filter(pk__in=run_ids, status=SyncRun.Status.QUEUED)
        rows = list(queued.values_list("pk", "integration_id"))
        SyncRun.objects.filter(pk__in=[pk for pk, _ in rows]).delete()
    return [integration_id for _, integration_id in rows]


def run_start(run_id: int) -> SyncRun | None:
    """Mark a queued run running (its worker, its first heartbeat); None when it is not queued any more."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().select_related("integration").filter(pk=run_id).first()
        if run is None or run.status != SyncRun.Status.QUEUED:
            return None  # a redelivered task, or a run the reaper closed: nothing to do
        run.status = SyncRun.Status.RUNNING
        run.started_at = run.heartbeat_at = now = timezone.now()
        run.worker = socket.gethostname()[:200]
        run.slice_token += 1  # the first slice holds it
        # One count per run (the pending rows' partial index), for its progress; the claims count nothing.
        run.planned = OutboxItem.objects.filter(
            integration_id=run.integration_id, status=Status.PENDING, next_attempt_at__lte=now
        ).count()
        run.save(update_fields=["status", "started_at", "heartbeat_at", "worker", "slice_token", "planned"])
    return run


def run_resume(run_id: int, token: int) -> SyncRun | None:
    """Take a running run for its next slice: the task that carries ``token`` (the one the last slice
    handed on) moves it on, in one conditional UPDATE. None when the run is not running any more, or a
    task took it with that token already (a message delivered twice): that task does nothing."""
    with transaction.atomic():
        taken = SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.RUNNING, slice_token=token).update(
            slice_token=token + 1, heartbeat_at=timezone.now(), worker=socket.gethostname()[:200]
        )
        if not taken:
            return None
        return SyncRun.objects.select_related("integration").get(pk=run_id)


def run_hand_off(run: SyncRun, *, resume_in: float) -> bool:
    """Between two slices (the run holds no outbox row in flight): its heartbeat dated ``resume_in``
    seconds ahead, when its next slice is due, so the reaper leaves a run waiting in the queue alone
    and still closes one whose next task never comes (timeout after that date). False: the run lost
    its lease meanwhile."""
    return bool(
        SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING, slice_token=run.slice_token).update(
            heartbeat_at=timezone.now() + timedelta(seconds=resume_in)
        )
    )


def run_finish(run: SyncRun, *, error: str = "", forced_status: str | None = None) -> SyncRun:
    """Close the run with its status, only while it is still running: a run the reaper closed stays
    abandoned (LeaseLost), however its worker's last batches went."""
    token = run.slice_token  # this slice's, whatever the row says now
    run.refresh_from_db()
    if forced_status:
        status = forced_status
    elif run.failed == 0:
        status = SyncRun.Status.SUCCEEDED
    elif run.delivered + run.skipped > 0:
        status = SyncRun.Status.PARTIAL
    else:
        status = SyncRun.Status.FAILED
    finished_at, summary = timezone.now(), run.error_summary
    if error:
        summary = error
    elif run.failed:
        failed = SyncRecord.objects.filter(run=run, status="failed", **partitions.run_window(run))
        codes = failed.values_list("error_code", flat=True).distinct()[:5]
        summary = f"{run.failed} record(s) failed ({', '.join(c for c in codes if c)})."
    closed = SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING, slice_token=token).update(
        status=status, finished_at=finished_at, error_summary=summary
    )
    run.slice_token = token
    if not closed:
        raise LeaseLost(f"sync run {run.pk} was closed by the reaper before it finished")
    run.status, run.finished_at, run.error_summary = status, finished_at, summary
    seconds = (finished_at - run.started_at).total_seconds() if run.started_at else None
    metrics.run_closed(trigger=run.trigger, outcome=status, seconds=seconds)
    logger.info(
        "Sync run %s %s: %s delivered, %s skipped, %s failed",
        run.pk,
        status,
        run.delivered,
        run.skipped,
        run.failed,
        extra={
            "run_id": run.pk,
            "integration_id": run.integration_id,
            "trigger": run.trigger,
            "outcome": status,
            "total": run.total,
            "delivered": run.delivered,
            "skipped": run.skipped,
            "failed": run.failed,
            "seconds": seconds,
        },
    )
    return run


_LOG_COLUMNS = (
    "run_id",
    "contact_id",
    "identifier",
    "status",
    "error_code",
    "destination_code",
    "error_message",
    "retryable",
    "payload",
    "created_at",
)


def records_write(rows: list[tuple]) -> None:
    """Insert sync-log rows in bulk: COPY on PostgreSQL (one round trip, no per-row SQL), bulk_create elsewhere."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        table = SyncRecord._meta.db_table
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} ({', '.join(_LOG_COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row((*row[:8], None if row[8] is None else jsoncodec.dumps(row[8]).decode(), row[9]))
        return
    SyncRecord.objects.bulk_create(
        [SyncRecord(**dict(zip(_LOG_COLUMNS, row, strict=True))) for row in rows], batch_size=500
    )


def sync_runs_reap(*, timeout: timedelta | None = None) -> int:
    """Close runs whose worker stopped answering (no heartbeat within ``timeout``; queued and never
    started within it) as abandoned; their in-flight rows go back to pending, marked sent before
    (the run may have pushed them: the newer-values check must apply when they go again).
    Returns how many runs it closed."""
    timeout = timedelta(seconds=settings.SYNC_RUN_TIMEOUT_SECONDS) if timeout is None else timeout
    cutoff = timezone.now() - timeout
    stale = Q(status=SyncRun.Status.RUNNING, heartbeat_at__lt=cutoff) | Q(
        status=SyncRun.Status.QUEUED, created_at__lt=cutoff
    )
    reaped = 0
    for run_id, trigger in list(SyncRun.objects.filter(stale).values_list("id", "trigger")):
        with transaction.atomic():
            # Locked and checked again: a heartbeat that moved since the list was read wins. SKIP LOCKED
            # and NOWAIT: a run whose row or in-flight rows are locked is committing a claim or a batch
            # this very moment. The reaper never waits for it (it would wait behind a frozen process, or
            # deadlock with the batch's fence); the next tick looks again.
            if not SyncRun.objects.select_for_update(skip_locked=True).filter(stale, pk=run_id).values_list("id"):
                continue
            try:
                with transaction.atomic():
                    rows = OutboxItem.objects.select_for_update(nowait=True).filter(
                        run_id=run_id, status=Status.IN_FLIGHT
                    )
                    in_flight = list(rows.values_list("id", flat=True))
            except DatabaseError:
                continue
            SyncRun.objects.filter(pk=run_id).update(
                status=SyncRun.Status.ABANDONED,
                finished_at=timezone.now(),
                error_summary="The worker stopped answering; its contacts went back to the queue.",
            )
            OutboxItem.objects.filter(id__in=in_flight).update(
                status=Status.PENDING, run=None, claimed_at=None, sent_before=True
            )
            reaped += 1
        metrics.run_reaped(trigger=trigger)
        logger.warning("Sync run %s abandoned: its worker stopped answering", run_id, extra={"run_id": run_id})
    return reaped


def log_partitions_ensure(*, days_ahead: int = 3, today: date | None = None, move_limit: int = 100_000) -> list[str]:
    """Make the daily log partitions from today (UTC) to ``days_ahead`` days on, those missing; the names made.

    Idempotent (the beat calls it hourly, every migrate once). A missing day's rows land in the
    DEFAULT partition meanwhile, so a write never fails; when its partition is made, rows of that
    day found in DEFAULT move into it in the same transaction, up to ``move_limit`` of them (DEFAULT
    is locked while they move, and the readers that cannot skip it wait). With more, the day is left
    in DEFAULT with a warning: its rows stay readable there and retention deletes them in batches.
    Each partition is made beside the table and attached (ATTACH locks the table SHARE UPDATE
    EXCLUSIVE: writes go on; CREATE ... PARTITION OF would block them). No-op on SQLite.
    """
    if connection.vendor != "postgresql":
        return []
    today = timezone.now().astimezone(UTC).date() if today is None else today
    made = []
    for day in (today + timedelta(days=n) for n in range(days_ahead + 1)):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                if not _maintenance_begin(cursor):
                    return made
                if _partition_day(cursor, day, move_limit):
                    made.append(partitions.day_name(day))
        except OperationalError as exc:
            if not partitions.lock_not_granted(exc):
                raise
            logger.warning("Sync-log partition for %s not made this time: %s", day, exc)
    return made


def _maintenance_begin(cursor) -> bool:
    """Start a partition DDL transaction: a short lock timeout, the maintenance lock; False when the
    table is not partitioned (SQLite-like plain table, or a database before migration 0006)."""
    cursor.execute(f"SET LOCAL lock_timeout = '{partitions.LOCK_TIMEOUT}'")
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [partitions.MAINTENANCE_LOCK])
    # A DDL refuses a table with deferred checks still pending in the transaction (a caller's own writes).
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    return partitions.is_partitioned(cursor)


def _partition_day(cursor, day: date, move_limit: int) -> bool:
    lower, upper = partitions.day_range(day)
    existing = partitions.partitions(cursor)
    if any(p.overlaps(lower, upper) for p in existing):
        return False  # made already, or covered by the legacy partition
    table, name = partitions.TABLE, partitions.day_name(day)
    moving = 0
    if any(p.is_default for p in existing):
        # Locked first: ATTACH takes this lock anyway, and rows must not arrive between the count and the move.
        cursor.execute(f"LOCK TABLE {partitions.DEFAULT} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {partitions.DEFAULT} "  # noqa: S608 - fixed names
            "WHERE created_at >= %s AND created_at < %s LIMIT %s) AS found",
            [lower, upper, move_limit + 1],
        )
        moving = cursor.fetchone()[0]
        if moving > move_limit:
            logger.warning(
                "Sync-log partition %s not made: more than %s rows of that day are in %s already "
                "(the partition task did not run); they stay there until retention deletes them",
                name,
                move_limit,
                partitions.DEFAULT,
            )
            return False
    cursor.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)")
    if moving:
        cursor.execute(
            f"WITH moved AS (DELETE FROM {partitions.DEFAULT} WHERE created_at >= %s AND created_at < %s "  # noqa: S608
            f"RETURNING {_ALL_COLUMNS}) INSERT INTO {name} ({_ALL_COLUMNS}) SELECT {_ALL_COLUMNS} FROM moved",
            [lower, upper],
        )
        logger.warning("Sync-log partition %s made late: %s rows moved from %s", name, moving, partitions.DEFAULT)
    cursor.execute(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [lower, upper])
    return True


_ALL_COLUMNS = ", ".join(("id", *_LOG_COLUMNS))


def sync_logs_purge(*, days: int | None = None, batch: int = 10_000) -> int:
    """Remove the log rows older than ``days``; keep the runs, marked ``logs_purged_at``. Returns the rows deleted
    in batches (a dropped partition's rows are not counted: nothing reads them one by one).

    On the partitioned table (PostgreSQL): every daily partition whose whole day is older than the
    retention is dropped (a day is kept up to one day longer than ``days``; DROP frees it at once,
    without the WAL and vacuum of deleting millions of rows). The legacy partition's rows (from
    before partitioning) go in batches per run, as they always did, until its whole range is old
    enough to drop; rows the DEFAULT partition holds for days older than the dropped ones go in
    batches too. A run whose rows are all gone is marked: a run's rows are all written while it
    runs, so its finish time dates them.

    Elsewhere (SQLite) and on a plain table: the batches per run of finished runs, as before.

    The runs' HTTP exchanges (sync_logs.exchanges) older than ``days`` (or EXCHANGE_LOG_RETENTION_DAYS, when
    shorter) go too, in batches by age; they are not counted in the return value.
    """
    days = settings.SYNC_LOG_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    exchange_days = min(days, settings.EXCHANGE_LOG_RETENTION_DAYS)
    if exchanges := exchanges_purge(before=timezone.now() - timedelta(days=exchange_days), batch=batch):
        logger.info("Retention: deleted %s sync-run HTTP exchanges older than %s days", exchanges, exchange_days)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if partitions.is_partitioned(cursor):
                return _purge_partitioned(cutoff, days, batch)
    deleted = _purge_runs_in_batches(partitions.TABLE, cutoff, batch)
    if deleted:
        logger.info("Retention: deleted %s sync-log rows older than %s days", deleted, days)
    return deleted


def _purge_runs_in_batches(table: str, finished_before: datetime, batch: int) -> int:
    """Delete the rows of ``table`` of the runs finished before ``finished_before``, a batch at a time,
    walking the (run, id) index, never one statement over millions of rows (short transactions, no
    long lock, no big WAL burst); mark those runs purged."""
    runs = SyncRun.objects.filter(finished_at__lt=finished_before, logs_purged_at=None).exclude(
        status__in=SyncRun.ACTIVE
    )
    deleted = 0
    for run_id in runs.order_by("id").values_list("id", flat=True).iterator():
        deleted += rows_delete_in_batches(table, "run_id = %s", [run_id], order="id", batch=batch)
        SyncRun.objects.filter(pk=run_id).update(logs_purged_at=timezone.now())
    return deleted


def _purge_partitioned(cutoff: datetime, days: int, batch: int) -> int:
    # Rows older than this boundary all go: the UTC midnight at or before the cutoff, so that only
    # whole days are dropped.
    boundary = partitions.day_start(cutoff.astimezone(UTC).date())
    with connection.cursor() as cursor:
        found = partitions.partitions(cursor)
    dropped, deleted = [], 0
    legacy = next((p for p in found if p.name == partitions.LEGACY), None)
    for partition in found:
        if partition.is_default or partition.upper is None or partition.upper > boundary:
            continue
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                # DROP locks the whole table for a moment: never wait long for it (the next hour tries again).
                if not _maintenance_begin(cursor):
                    return deleted
                cursor.execute(f"DROP TABLE IF EXISTS {partition.name}")
            dropped.append(partition.name)
        except OperationalError as exc:
            if not partitions.lock_not_granted(exc):
                raise
            logger.warning("Retention: partition %s not dropped this time: %s", partition.name, exc)
            return deleted  # the runs are marked only once every older row is gone
    if legacy is not None and legacy.name not in dropped:
        # Rows from before partitioning, of runs finished before the cutoff (and so before its range ended).
        assert legacy.upper is not None  # [MINVALUE, cut-over)
        deleted += _purge_runs_in_batches(partitions.LEGACY, min(cutoff, legacy.upper), batch)
    if any(p.is_default for p in found):
        deleted += _purge_default_before(boundary, batch)
    # Every row before the boundary is gone now, but for the legacy partition's (if it is still there):
    # the runs finished before it, and begun after the legacy range if it is, have no rows left.
    gone = SyncRun.objects.filter(finished_at__lt=boundary, logs_purged_at=None).exclude(status__in=SyncRun.ACTIVE)
    if legacy is not None and legacy.name not in dropped:
        gone = gone.filter(created_at__gte=legacy.upper)
    gone.update(logs_purged_at=timezone.now())
    if dropped or deleted:
        logger.info(
            "Retention: dropped sync-log partitions %s and deleted %s rows older than %s days",
            ", ".join(dropped) or "none",
            deleted,
            days,
        )
    return deleted


def _purge_default_before(boundary: datetime, batch: int) -> int:
    """Delete the DEFAULT partition's rows older than ``boundary`` in batches (it holds few rows:
    those of days whose partition was not made in time)."""
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {partitions.DEFAULT} WHERE ctid IN (SELECT ctid FROM {partitions.DEFAULT} "  # noqa: S608
                "WHERE created_at < %s LIMIT %s)",
                [boundary, batch],
            )
            count = max(cursor.rowcount, 0)
        deleted += count
        if count < batch:
            return deleted
