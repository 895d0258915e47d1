"""Dispatcher benchmark: one beat tick starting N due integrations, on PostgreSQL and Redis.

    .venv/bin/python bench/dispatcher.py [--integrations 10000] [--repeats 3] [--old-sample 300]

Seeds N connected integrations (each in a workspace of its own, every frequency of the
choices, all due a minute ago) with set-based SQL, then times one tick as the beat task
runs it (integrations_enqueue_due: the claim, the runs, then one sync task per run sent
after commit), counts its SQL statements, and ticks again right after (it must start
none). Prints runs/s and the time against the issue's target: 10,000 started in one tick
in under 2 s; the time in SQL and in sending the tasks; and the CPU the tick took in this
process, in its PostgreSQL backend and in Redis (read from /proc when they run on this
machine): on a shared machine the wall time moves with the neighbours, the CPU much less.
--repeats R times R ticks, each on fresh integrations, and prints their median. The tasks
go to a throwaway queue on REDIS_URL (no worker takes them), deleted after.

--old-sample K also times the previous tick, a loop of one update and one sync_now per
integration (each its own transaction and apply_async), on K more due integrations, and
prints its time per integration (the issue quotes 8.9 ms) and what N would take at that
pace; 0 skips it.

BENCH_DATABASE_URL names the database (default postgres://postgres@127.0.0.1:5432/flowsync_bench_dispatch;
created when missing, kept between runs); the bench's own rows are deleted before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import BENCH_ENV, cpu_seconds, ensure_database  # noqa: E402 - after the path is set

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/flowsync_bench_dispatch"
TARGET_SECONDS = 2.0
SLUG_PREFIX = "bench-dispatch-"


def _seed(count: int) -> list[int]:
    """``count`` due, connected integrations, each in a new workspace: two statements. Returns their ids."""
    from django.db import connection

    from flows.models import Contact, ConversionFlow
    from integrations.models import Integration, OutboxItem
    from lib.crypto import encrypt
    from workspaces.models import Workspace

    tag = uuid.uuid4().hex[:8]
    frequencies = [f for f in Integration.Frequency.values if f]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Workspace._meta.db_table} (name, slug, created_at) "
            "SELECT 'Bench dispatch ' || g, %s || g, now() FROM generate_series(1, %s) g",
            [f"{SLUG_PREFIX}{tag}-", count],
        )
        cursor.execute(
            f"INSERT INTO {Integration._meta.db_table} (workspace_id, kind, status, auth_method, credentials, "
            "key_last4, connected_at, verified_at, error_code, error_message, created_at, updated_at, frequency, "
            "next_run_at, overwrite_existing, config) "
            "SELECT w.id, 'iterable', 'connected', 'api_key', %s, 'ench', now(), now(), '', '', now(), now(), "
            "(%s::int[])[1 + w.id %% %s], now() - interval '1 minute', true, "
            """'{"region": "us", "project_type": "hybrid"}'::jsonb """
            f"FROM {Workspace._meta.db_table} w WHERE w.slug LIKE %s RETURNING id",
            [encrypt({"api_key": "bench-not-a-key"}), frequencies, len(frequencies), f"{SLUG_PREFIX}{tag}-%"],
        )
        ids = [row[0] for row in cursor.fetchall()]
        # A contact waiting in each: the tick starts no run for an integration with nothing to send.
        cursor.execute(
            f"INSERT INTO {ConversionFlow._meta.db_table} (name, public_id, is_enabled, headline, thank_you_message, "
            "created_at, updated_at, workspace_id) SELECT 'Bench', md5(random()::text), true, '', '', now(), now(), "
            f"w.id FROM {Workspace._meta.db_table} w WHERE w.slug LIKE %s",
            [f"{SLUG_PREFIX}{tag}-%"],
        )
        cursor.execute(
            f"INSERT INTO {Contact._meta.db_table} (workspace_id, flow_id, data, email, source, created_at) "
            "SELECT f.workspace_id, f.id, '{}'::jsonb, 'due@example.com', 'api', now() "
            f"FROM {ConversionFlow._meta.db_table} f WHERE f.workspace_id IN (SELECT workspace_id FROM "
            f"{Integration._meta.db_table} WHERE id = ANY(%s))",
            [ids],
        )
        cursor.execute(
            f"INSERT INTO {OutboxItem._meta.db_table} (integration_id, contact_id, status, attempts, next_attempt_at, "
            f"updated_at, error_code, error_message) SELECT i.id, c.id, 'pending', 0, now(), now(), '', '' "
            f"FROM {Integration._meta.db_table} i JOIN {Contact._meta.db_table} c ON c.workspace_id = i.workspace_id "
            "WHERE i.id = ANY(%s)",
            [ids],
        )
        for model in (Integration, OutboxItem):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    return ids


def _delete_bench_rows() -> None:
    from django.db import connection

    from flows.models import Contact, ConversionFlow
    from integrations.models import Integration, OutboxItem
    from sync_logs.models import SyncRun
    from workspaces.models import Workspace

    workspaces, integrations = Workspace._meta.db_table, Integration._meta.db_table
    mine = f"SELECT id FROM {workspaces} WHERE slug LIKE %s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {SyncRun._meta.db_table} WHERE integration_id IN "
            f"(SELECT id FROM {integrations} WHERE workspace_id IN ({mine}))",
            [f"{SLUG_PREFIX}%"],
        )
        theirs = f"SELECT id FROM {integrations} WHERE workspace_id IN ({mine})"
        cursor.execute(
            f"DELETE FROM {OutboxItem._meta.db_table} WHERE integration_id IN ({theirs})", [f"{SLUG_PREFIX}%"]
        )
        for model in (Contact, ConversionFlow):
            table = model._meta.db_table
            cursor.execute(f"DELETE FROM {table} WHERE workspace_id IN ({mine})", [f"{SLUG_PREFIX}%"])
        cursor.execute(f"DELETE FROM {integrations} WHERE workspace_id IN ({mine})", [f"{SLUG_PREFIX}%"])
        cursor.execute(f"DELETE FROM {workspaces} WHERE slug LIKE %s", [f"{SLUG_PREFIX}%"])
        # Without the dead rows of the runs before: the tick's scan is timed on a table of this run's size.
        for table in (SyncRun._meta.db_table, integrations, workspaces):
            cursor.execute(f"VACUUM ANALYZE {table}")


def _queue_length(queue: str) -> int:
    from celery import current_app

    with current_app.connection_for_write() as conn:
        return conn.default_channel.queue_declare(queue, passive=True).message_count


def _queue_delete(queue: str) -> None:
    from celery import current_app

    with current_app.connection_for_write() as conn:
        bound = current_app.amqp.queues[queue](conn.default_channel)
        bound.declare()  # the channel learns its bindings, which the delete removes with the messages
        bound.delete()


def _old_tick(integration_ids: list[int]) -> int:
    """The tick before this one (git history of integrations/sync.py), limited to ``integration_ids``."""
    from django.db.models import Q
    from django.utils import timezone

    from integrations.models import Integration
    from integrations.sync import SyncNotStarted, sync_now
    from sync_logs.models import SyncRun

    now = timezone.now()
    started = 0
    due = Integration.objects.filter(
        pk__in=integration_ids, status=Integration.Status.CONNECTED, paused_at=None, frequency__gt=0
    ).filter(Q(next_run_at=None) | Q(next_run_at__lte=now))
    for integration in due:
        Integration.objects.filter(pk=integration.pk).update(next_run_at=now + timedelta(minutes=integration.frequency))
        try:
            sync_now(integration=integration, trigger=SyncRun.Trigger.SCHEDULE)
            started += 1
        except SyncNotStarted:
            continue
    return started


def _cpu(pid: int | str | None) -> float | None:
    """A process's CPU seconds so far, when it runs on this machine (PostgreSQL's and Redis's may not)."""
    try:
        return cpu_seconds(pid) if pid is not None else None
    except (OSError, ValueError):
        return None


def _one_tick(count: int, queue: str) -> dict:
    """Seed ``count`` due integrations, time one tick, then tick again; the figures."""
    import redis
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from integrations import sync
    from sync_logs.models import SyncRun

    ids = _seed(count)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    broker = redis.Redis.from_url(settings.REDIS_URL).info("server")["process_id"]
    # The sending is timed on its own too (it runs in the tick's on_commit): the module's function, wrapped.
    send, sending = sync.sync_runs_send, []

    def timed_send(run_ids):
        began = time.perf_counter()
        send(run_ids)
        sending.append(time.perf_counter() - began)

    sync.sync_runs_send = timed_send
    try:
        cpu_before = [_cpu("self"), _cpu(backend), _cpu(broker)]
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            run_ids = sync.integrations_enqueue_due()
            seconds = time.perf_counter() - started
        cpu = [None if b is None else _cpu(p) - b for b, p in zip(cpu_before, ("self", backend, broker), strict=True)]
    finally:
        sync.sync_runs_send = send
    queued = _queue_length(queue)
    runs = SyncRun.objects.filter(integration_id__in=ids).count()
    started = time.perf_counter()
    again = sync.integrations_enqueue_due()
    again_seconds = time.perf_counter() - started
    _queue_delete(queue)
    _delete_bench_rows()
    return {
        "started": len(run_ids),
        "seconds": seconds,
        "sending": sending[0] if sending else 0.0,
        "statements": [q["sql"].split(None, 1)[0] for q in queries.captured_queries],
        "queued": queued,
        "runs": runs,
        "again": len(again),
        "again_seconds": again_seconds,
        "cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--integrations", type=int, default=10_000, help="due integrations for the tick")
    parser.add_argument("--repeats", type=int, default=3, help="ticks timed, each on fresh integrations")
    parser.add_argument("--old-sample", type=int, default=300, help="integrations for the old loop's figure (0: skip)")
    args = parser.parse_args()

    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    ensure_database(db_url)
    queue = f"bench-dispatch-{uuid.uuid4().hex[:8]}"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": db_url,
            "DEBUG": "0",
            **BENCH_ENV,
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "CELERY_QUEUE": queue,  # the sync tasks' queue (settings.CELERY_TASK_DEFAULT_QUEUE): no worker reads it
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _delete_bench_rows()  # a run stopped half-way leaves its rows
    count = args.integrations
    print(
        f"dispatcher: PostgreSQL, broker {os.environ['REDIS_URL'].split('@')[-1]} (queue {queue}, no worker), "
        f"{os.cpu_count()} cores; each tick on {count:,} fresh due integrations, each in its own workspace"
    )
    try:
        # The worker that runs the beat task has its broker transport imported and its connections open
        # (it consumes from Redis): a first tick of one integration gives this process the same start.
        _one_tick(1, queue)
        times = []
        for _ in range(args.repeats):
            r = _one_tick(count, queue)
            times.append(r["seconds"])
            sql = r["seconds"] - r["sending"]
            cpu = "   ".join(
                f"{name} {value:.2f}s"
                for name, value in zip(("tick", "PostgreSQL", "Redis"), r["cpu"], strict=True)
                if value is not None
            )
            print(
                f"N={count:>8,}  one tick started {r['started']:,} runs in {r['seconds']:.2f}s = "
                f"{r['started'] / r['seconds']:,.0f} runs/s   time / target ({TARGET_SECONDS:g} s) "
                f"{r['seconds'] / TARGET_SECONDS:.2f}x"
            )
            print(
                f"{'':12}SQL {sql:.2f}s: {len(r['statements'])} statements ({', '.join(r['statements'])}), "
                f"{len(r['statements']) / max(count, 1):.4f} per integration; sending {r['sending']:.2f}s "
                f"({r['sending'] / max(r['queued'], 1) * 1e6:.0f} us a task), {r['queued']:,} tasks on the queue, "
                f"{r['runs']:,} runs in the database"
            )
            print(f"{'':12}CPU: {cpu}")
            print(f"{'':12}a second tick right after: {r['again']:,} runs in {r['again_seconds']:.3f}s")
        if len(times) > 1:
            median = statistics.median(times)
            print(
                f"median of {len(times)}: {median:.2f}s = {count / median:,.0f} runs/s, "
                f"time / target {median / TARGET_SECONDS:.2f}x (best {min(times):.2f}s)"
            )

        if args.old_sample:
            sample = _seed(args.old_sample)
            started = time.perf_counter()
            old_started = _old_tick(sample)
            old = time.perf_counter() - started
            per = old / max(old_started, 1)
            print(
                f"old loop (an update and a sync_now each) on {old_started:,}: {per * 1000:.1f} ms per integration, "
                f"so N={count:,} would take {per * count:.1f}s"
            )
    finally:
        _queue_delete(queue)
        _delete_bench_rows()


if __name__ == "__main__":
    main()
