"""Sync-log viewer benchmark: one run with 1,000,000 log rows in PostgreSQL.

    .venv/bin/python bench/logs.py [--rows 1000000] [--repeats 15] [--export]

Seeds the rows with one INSERT ... SELECT generate_series (2% failed; the emails are a
permutation of the row numbers, so they do not follow the ids, as in real runs), then times the
viewer's pages through the full Django stack in this process (server time: URL
resolution, middleware, session, queries, template): the first page, a deep page
(row 900,000, keyset), the failed filter, an email search and searches by any part of an
identifier (rare, common, every row, none). Prints the median and
the worst of the repeats. Issue target: each < 100 ms. ``--export`` also streams the
run's CSV and prints rows/s and the peak RSS growth of this process.

Uses BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/flowsync_bench_logs);
the run is made once and kept between invocations.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import BENCH_ENV, ensure_database, peak_rss_mb  # noqa: E402 - after the path is set

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/flowsync_bench_logs"


def _seed(rows: int):
    """The bench workspace, its integration and one run of ``rows`` log rows (made once)."""
    from django.db import connection
    from django.utils import timezone

    from accounts.models import User
    from integrations.models import Integration
    from sync_logs.models import SyncRecord, SyncRun
    from workspaces.services import workspace_create

    user = User.objects.filter(email="bench-logs@example.com").first()
    if user is None:
        user = User.objects.create_user(
            email="bench-logs@example.com", password="bench-logs-password", email_verified_at=timezone.now()
        )
        workspace_create(name="Bench logs", owner=user)
    workspace = user.memberships.get().workspace
    integration, _ = Integration.objects.get_or_create(
        workspace=workspace, kind="iterable", defaults={"status": "connected", "credentials": {"api_key": "x" * 32}}
    )
    run = SyncRun.objects.filter(integration=integration, total=rows).first()
    if run is None:
        started = time.perf_counter()
        now = timezone.now()
        run = SyncRun.objects.create(
            integration=integration,
            trigger="manual",
            status="partial",
            started_at=now,
            finished_at=now,
            total=rows,
            delivered=rows - rows // 50,
            failed=rows // 50,
        )
        table = SyncRecord._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (run_id, identifier, status, error_code, error_message, retryable, "
                "payload, created_at) SELECT %s, 'user' || lpad(((g::bigint * 7919) %% %s)::text, 7, '0') || "
                "'@example.com', "
                "CASE WHEN g %% 50 = 0 THEN 'failed' ELSE 'delivered' END, "
                "CASE WHEN g %% 50 = 0 THEN 'RequestFieldsTypesMismatched' ELSE '' END, "
                "CASE WHEN g %% 50 = 0 THEN 'Iterable has ''age'' as long, the value sent was ''ten'' (string)' "
                "ELSE '' END, false, jsonb_build_object('email', 'user' || g || '@example.com', 'dataFields', "
                "jsonb_build_object('firstName', 'User' || g, 'age', g %% 90)), %s "
                "FROM generate_series(1, %s) g",
                [run.pk, rows, now, rows],
            )
            cursor.execute(f"ANALYZE {table}")
        print(f"seeded {rows:,} log rows in {time.perf_counter() - started:.1f}s")
    return user, workspace, run


def _staff():
    from accounts.models import User

    user = User.objects.filter(email="bench-staff@example.com").first()
    return user or User.objects.create_superuser(email="bench-staff@example.com", password="bench-staff-password")


def _time(client, url: str, repeats: int, expect: str) -> tuple[float, float]:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and expect in response.content.decode(), url
    return statistics.median(timings), max(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--export", action="store_true", help="also time the CSV export of the whole run")
    args = parser.parse_args()

    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    ensure_database(db_url)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": db_url,
            "DEBUG": "0",
            **BENCH_ENV,
            "LOG_LEVEL": "WARNING",
            "ALLOWED_HOSTS": "testserver",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from sync_logs.models import SyncRecord

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # pages link their hashed static names
    user, workspace, run = _seed(args.rows)
    client = Client()
    client.force_login(user)
    base = f"/w/{workspace.slug}/integrations/iterable/logs/runs/{run.pk}/"
    deep_after = SyncRecord.objects.filter(run=run).order_by("id").values_list("id", flat=True)[int(args.rows * 0.9)]
    target = f"user{int(args.rows * 0.765):07d}@"
    cases = [
        ("first page", base, 'data-record="'),
        ("deep page (row 900,000)", f"{base}?after={deep_after}", 'data-record="'),
        ("failed filter", f"{base}?status=failed", 'data-status="failed"'),
        ("failed filter, deep page", f"{base}?status=failed&after={deep_after}", 'data-status="failed"'),
        ("email search", f"{base}?q={target}", target),
        ("prefix search (10% match)", f"{base}?q={target[:6]}", target[:6]),
        # Any part of an identifier (the trigram index): one row, a part in 0.4% of the rows, every row, none.
        ("any part: one row", f"{base}?q={target[3:-1]}", target),
        ("any part: 0.4% match", f"{base}?q={target[5:8]}", target[5:8]),
        ("any part: every row", f"{base}?q=EXAMPLE.com", "example.com"),
        ("any part: no row", f"{base}?q=nobody", "No record matches."),
        ("short: two characters", f"{base}?q=us", "user"),
        ("run list", f"/w/{workspace.slug}/integrations/iterable/logs/", f'data-run="{run.pk}"'),
    ]
    staff = Client()
    staff.force_login(_staff())
    records_admin = "/admin/sync_logs/syncrecord/"
    cases += [
        ("admin: log rows", records_admin, "user"),
        ("admin: search one email", f"{records_admin}?q={target}example.com", target),
        ("admin: failed in the run", f"{records_admin}?run__id__exact={run.pk}&status__exact=failed", "user"),
    ]
    client.get(base)  # warm the connection and the template cache
    print(f"run with {args.rows:,} log rows; server time over {args.repeats} requests each (target < 100 ms)")
    for label, url, expect in cases:
        median, worst = _time(staff if url.startswith("/admin/") else client, url, args.repeats, expect)
        print(f"  {label:<28} median {median:6.1f} ms   worst {worst:6.1f} ms")

    if args.export:
        from sync_logs.services import records_csv

        before = peak_rss_mb()
        started = time.perf_counter()
        lines = sum(1 for _ in records_csv(run))
        seconds = time.perf_counter() - started
        print(
            f"  CSV export: {lines - 1:,} rows in {seconds:.1f}s = {(lines - 1) / seconds:,.0f} rows/s, "
            f"peak RSS {before:.0f} -> {peak_rss_mb():.0f} MB"
        )


if __name__ == "__main__":
    main()
