"""Capacity at internet scale (issue #12, item 7): measured unit costs, then a model of 10,000 workspaces.

    .venv/bin/python bench/capacity.py measure [--contacts 20000] [--empty-runs 20] [--json var/capacity.json]
    .venv/bin/python bench/capacity.py model [--figures var/capacity.json] [--workspaces 10000] [--seed 12] ...

measure: on the bench database (BENCH_DATABASE_URL, created when missing; REDIS_URL), seeds --contacts
contacts of one workspace connected to the Iterable emulator (bench/sync.py's seeding, limits on),
syncs them with one real Celery worker (pool solo) and reads, before and after: the tables' sizes with
their indexes and TOAST (pg_total_relation_size) and row counts, the WAL position
(pg_current_wal_lsn()), Redis's INFO commandstats and the worker's CPU. Then --empty-runs runs with
nothing to send (what a scheduled run of a quiet workspace costs: start, schema refresh, one empty
claim, finish), one after the other, and the idle worker's Redis commands per second. Printed: bytes
per contact, outbox and log row; WAL per contact captured (bulk-seeded: a floor for the capture API's
one-transaction-per-contact inserts) and per contact synced; Redis commands per bulkUpdate batch and per
run; worker CPU per contact and per run; the wall time of an empty run. The WAL position and Redis's
counters are server-wide: run it under the bench lock on a quiet machine. --json writes the figures.

model: reads those figures (--figures; without it the defaults below, measured with `measure` on the
2-core development machine) and simulates --workspaces workspaces (seeded): daily captures lognormal
(--median-captures, --sigma: a long tail, a few workspaces capture most), sync frequencies from
--frequency-mix, and backfills (workspaces connecting with a backlog, lognormal --median-backlog,
--backlog-sigma, --backfills-per-day). Printed per day: contacts, runs, bulkUpdate batches, worker CPU and
slot time, hence worker processes at --utilisation (at the --peak-factor hour), PostgreSQL rows and WAL,
the log table at SYNC_LOG_RETENTION_DAYS, outbox/contacts/runs growth (nothing deletes them), Redis ops/s.
Then a discrete-event simulation of the workers' slots over --window seconds of the peak hour: the
scheduled runs arrive as the frequencies say, --burst backfills (lognormal median --burst-backlog: big
customers migrating) arrive at once at the start, each run holds a slot for its
overhead plus its contacts at one project's pace (Iterable: 4,750 contacts/s), and the small runs'
wait (arrival to done) is printed at p50/p95/p99 with run-to-completion and with time slices of
--slices seconds (a run works one slice, then queues again behind the others, paying a run's overhead
again). Every input is printed with the figures; change them to see where the design breaks.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import statistics
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# What `measure --empty-runs 50` wrote on the 2-core development machine (docs/scale.md has the run and
# the spread of the server-wide readings); `model` uses them when no --figures file is given.
DEFAULT_FIGURES: dict[str, float] = {
    "contacts_measured": 20000,
    "latency_ms": 0,
    "retention_days": 90,
    "contact_row_bytes": 471.8592,
    "outbox_row_bytes": 334.4794,
    "outbox_sync_growth_bytes_per_contact": 197.8368,
    "log_row_bytes": 415.744,
    "log_row_bytes_table": 407.1424,
    "run_row_bytes": 970.9037,
    "wal_bytes_per_contact_captured": 2236.7716,
    "wal_bytes_per_contact_synced": 1810.0224,
    "wal_bytes_per_empty_run": 33646.88,
    "batches_per_contact": 0.001,
    "redis_commands_per_batch": 29.8,
    "redis_commands_per_empty_run": 32.44,
    "redis_commands_per_second_idle_worker": 88.847,
    "worker_cpu_us_per_contact": 115.0,
    "database_cpu_us_per_contact": 168.5,
    "worker_cpu_ms_per_empty_run": 37.8,
    "database_cpu_ms_per_empty_run": 104.8,
    "empty_run_wall_seconds": 0.0434,
    "sync_contacts_per_second": 3144.3029,
}

DAY = 86_400
PACE_CONTACTS_PER_SECOND = 4750  # Iterable's 5 bulkUpdate/s per project x 1,000 users, paced at 95%


# --- measure -----------------------------------------------------------------------------------


def _tables() -> dict[str, str]:
    from flows.models import Contact
    from integrations.models import OutboxItem
    from sync_logs.models import SyncRecord, SyncRun

    return {
        "contact": Contact._meta.db_table,
        "outbox": OutboxItem._meta.db_table,
        "log": SyncRecord._meta.db_table,
        "run": SyncRun._meta.db_table,
    }


def _snapshot(worker_pid: int | None = None) -> dict:
    """Sizes and row counts of the sync's tables, the WAL position, Redis's command counts, CPU so far."""
    import redis
    from django.conf import settings
    from django.db import connection

    from bench.common import cpu_seconds, database_cpu_seconds

    shot: dict = {"tables": {}}
    with connection.cursor() as cursor:
        for name, table in _tables().items():
            cursor.execute(f"SELECT pg_total_relation_size(%s), (SELECT count(*) FROM {table})", [table])
            shot["tables"][name] = cursor.fetchone()
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        shot["lsn"] = cursor.fetchone()[0]
    stats = redis.Redis.from_url(settings.REDIS_URL).info("commandstats")
    # INFO itself is counted by Redis: left out, as the bench's own reading.
    shot["redis"] = {k: v["calls"] for k, v in stats.items() if k != "cmdstat_info"}
    shot["worker_cpu"] = cpu_seconds(worker_pid) if worker_pid else 0.0
    shot["database_cpu"] = database_cpu_seconds()
    shot["at"] = time.monotonic()
    return shot


def _wal_bytes(before: str, after: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(%s, %s)", [after, before])
        return int(cursor.fetchone()[0])


def _redis_calls(before: dict, after: dict) -> tuple[int, dict[str, int]]:
    diff = {k.removeprefix("cmdstat_"): after[k] - before.get(k, 0) for k in after}
    diff = {k: v for k, v in diff.items() if v}
    return sum(diff.values()), dict(sorted(diff.items(), key=lambda kv: -kv[1])[:6])


def _grown(before: dict, after: dict, table: str) -> tuple[int, int]:
    (size0, rows0), (size1, rows1) = before["tables"][table], after["tables"][table]
    return size1 - size0, rows1 - rows0


def measure(args: argparse.Namespace) -> None:
    from bench.processes import _start_workers, _wait_done, _wait_ready
    from bench.sync import _seed, bench_started, vacuum_sync_tables

    sync_args = SimpleNamespace(
        destination="iterable", batch=1000, no_limit=False, refused=0.0, latency_ms=args.latency_ms, no_spec=False
    )
    with bench_started(sync_args) as (bench, env, _emulator_pid):
        from django.conf import settings

        from integrations.models import Integration
        from integrations.sync import sync_now

        emulator = bench.control()
        kind, data = bench.account(emulator, 900_000 + random.randrange(99_999))  # a project of its own
        vacuum_sync_tables()
        seeded0 = _snapshot()
        integration_id = _seed(f"Capacity {uuid.uuid4().hex[:6]}", args.contacts, kind, data, bench.targets())
        seeded1 = _snapshot()
        vacuum_sync_tables()

        queue = f"bench-capacity-{uuid.uuid4().hex[:6]}"
        workers = _start_workers(1, 1, env, queue)
        try:
            _wait_ready(workers, queue)
            settings.CELERY_TASK_DEFAULT_QUEUE = queue
            pid = workers[0].pid
            idle0 = _snapshot(pid)
            time.sleep(args.idle_seconds)
            idle1 = _snapshot(pid)
            pushes0 = bench.counters(emulator.stats())[0]
            sync0 = _snapshot(pid)
            sync_now(integration=Integration.objects.get(pk=integration_id))
            _wait_done([integration_id], workers)
            time.sleep(0.5)  # the run's helper threads' backends exit: their CPU is the postmaster's then
            sync1 = _snapshot(pid)
            batches = bench.counters(emulator.stats())[0] - pushes0
            walls = []
            for _ in range(args.empty_runs):
                run = sync_now(integration=Integration.objects.get(pk=integration_id))
                _wait_done([integration_id], workers)
                run.refresh_from_db()
                walls.append((run.finished_at - run.started_at).total_seconds())  # the worker's time on it
            empty1 = _snapshot(pid)
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(30)

        vacuum_sync_tables()
        final = _snapshot()
        contacts = args.contacts
        log_bytes, log_rows = _grown(sync0, sync1, "log")
        # A few runs fit in the free space of the table's last page: its size over its rows instead.
        run_bytes, run_rows = empty1["tables"]["run"]
        # Whole tables after VACUUM: an outbox row updated twice leaves free space that the next captures
        # fill, so a table's size over its rows is what it costs for good (a delta would count that space
        # on one run and not the next).
        outbox_bytes, outbox_rows = final["tables"]["outbox"]
        contact_bytes, contact_rows = final["tables"]["contact"]
        outbox_after_sync = _grown(sync0, sync1, "outbox")[0]
        sync_redis, sync_top = _redis_calls(sync0["redis"], sync1["redis"])
        empty_redis, empty_top = _redis_calls(sync1["redis"], empty1["redis"])
        idle_redis, _ = _redis_calls(idle0["redis"], idle1["redis"])
        idle_seconds = idle1["at"] - idle0["at"]
        sync_seconds = sync1["at"] - sync0["at"]
        # Redis's counters are server-wide: whatever else uses that Redis meanwhile is counted too, so these
        # are upper bounds (the commands most called are printed to tell the sync's own from the rest).
        idle_rate = idle_redis / idle_seconds
        figures = {
            "contacts_measured": contacts,
            "latency_ms": args.latency_ms,
            "retention_days": settings.SYNC_LOG_RETENTION_DAYS,
            "contact_row_bytes": contact_bytes / contact_rows,
            "outbox_row_bytes": outbox_bytes / outbox_rows,
            "outbox_sync_growth_bytes_per_contact": outbox_after_sync / contacts,
            "log_row_bytes": log_bytes / log_rows,  # appended and never updated: this run's rows alone
            "log_row_bytes_table": final["tables"]["log"][0] / max(final["tables"]["log"][1], 1),
            "run_row_bytes": run_bytes / max(run_rows, 1),
            "wal_bytes_per_contact_captured": _wal_bytes(seeded0["lsn"], seeded1["lsn"]) / contacts,
            "wal_bytes_per_contact_synced": _wal_bytes(sync0["lsn"], sync1["lsn"]) / contacts,
            "wal_bytes_per_empty_run": _wal_bytes(sync1["lsn"], empty1["lsn"]) / args.empty_runs,
            "batches_per_contact": batches / contacts,
            "redis_commands_per_batch": sync_redis / max(batches, 1),
            "redis_commands_per_empty_run": empty_redis / args.empty_runs,
            "redis_commands_per_second_idle_worker": idle_rate,
            "worker_cpu_us_per_contact": (sync1["worker_cpu"] - sync0["worker_cpu"]) / contacts * 1e6,
            "database_cpu_us_per_contact": (sync1["database_cpu"] - sync0["database_cpu"]) / contacts * 1e6,
            "worker_cpu_ms_per_empty_run": (empty1["worker_cpu"] - sync1["worker_cpu"]) / args.empty_runs * 1e3,
            "database_cpu_ms_per_empty_run": (empty1["database_cpu"] - sync1["database_cpu"]) / args.empty_runs * 1e3,
            "empty_run_wall_seconds": statistics.median(walls),
            "sync_contacts_per_second": contacts / sync_seconds,
        }
    _print_measured(figures, {"sync": sync_top, "empty runs": empty_top})
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"written to {args.json}")


def _print_measured(f: dict, top: dict[str, dict[str, int]]) -> None:
    print(
        f"measured on {f['contacts_measured']:,} contacts (Iterable emulator, limits on, "
        f"latency {f['latency_ms']} ms), "
        f"one worker (pool solo), {os.cpu_count()} cores"
    )
    print(
        f"  bytes per row with indexes and TOAST: contact {f['contact_row_bytes']:.0f}, "
        f"outbox {f['outbox_row_bytes']:.0f} "
        f"(+{f['outbox_sync_growth_bytes_per_contact']:.0f} per contact while synced: dead versions, reusable "
        f"after VACUUM), log row {f['log_row_bytes']:.0f} (whole table {f['log_row_bytes_table']:.0f}), "
        f"run {f['run_row_bytes']:.0f}; contact, outbox and run: the tables' size over their rows"
    )
    print(
        f"  WAL: {f['wal_bytes_per_contact_captured']:.0f} B per contact captured (bulk insert), "
        f"{f['wal_bytes_per_contact_synced']:.0f} B per contact synced, "
        f"{f['wal_bytes_per_empty_run']:.0f} B per empty run"
    )
    print(
        f"  Redis (server-wide, upper bounds): {f['redis_commands_per_batch']:.1f} commands per bulkUpdate batch "
        f"({f['batches_per_contact'] * 1000:.2f} batches per 1,000 contacts), "
        f"{f['redis_commands_per_empty_run']:.1f} per empty run, "
        f"{f['redis_commands_per_second_idle_worker']:.1f}/s from an idle worker"
    )
    for what, commands in top.items():
        print(f"    most called during the {what}: {', '.join(f'{k} {v:,}' for k, v in commands.items())}")
    print(
        f"  CPU: worker {f['worker_cpu_us_per_contact']:.0f} us per contact, "
        f"{f['worker_cpu_ms_per_empty_run']:.1f} ms per "
        f"empty run; PostgreSQL (all of it on the machine) {f['database_cpu_us_per_contact']:.0f} us per contact, "
        f"{f['database_cpu_ms_per_empty_run']:.1f} ms per empty run"
    )
    print(
        f"  an empty run takes {f['empty_run_wall_seconds'] * 1000:.0f} ms of a worker's time "
        f"(median, started to finished); "
        f"the sync ran at {f['sync_contacts_per_second']:,.0f} contacts/s; "
        f"log retention SYNC_LOG_RETENTION_DAYS={f['retention_days']}"
    )


# --- model -------------------------------------------------------------------------------------


def _lognormal(rng: random.Random, median: float, sigma: float, n: int) -> list[float]:
    return [rng.lognormvariate(math.log(median), sigma) for _ in range(n)]


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _frequencies(mix: str) -> list[tuple[int, float]]:
    """ "15:0.3,60:0.4,..." -> [(minutes, share)]; 0 minutes is manual only (no scheduled runs)."""
    pairs = [(int(m), float(s)) for m, s in (item.split(":") for item in mix.split(","))]
    total = sum(s for _, s in pairs)
    return [(m, s / total) for m, s in pairs]


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"


def model(args: argparse.Namespace) -> None:
    f = {**DEFAULT_FIGURES, **(json.loads(Path(args.figures).read_text()) if args.figures else {})}
    if not f:
        raise SystemExit("No figures: run `bench/capacity.py measure --json FILE` and pass --figures FILE")
    retention = args.retention_days or f["retention_days"]
    rng = random.Random(args.seed)
    n = args.workspaces
    captures = _lognormal(rng, args.median_captures, args.sigma, n)
    mix = _frequencies(args.frequency_mix)
    frequency = rng.choices([m for m, _ in mix], weights=[s for _, s in mix], k=n)
    backlogs = _lognormal(rng, args.median_backlog, args.backlog_sigma, args.backfills_per_day)
    backlogs = [min(b, args.max_backlog) for b in backlogs]

    contacts_day = sum(captures) + sum(backlogs)
    # A manual-only workspace is taken to press Sync Now once a day.
    per_day = [DAY / 60 / m if m else 1.0 for m in frequency]
    runs_day = sum(per_day) + args.backfills_per_day
    # A run sends what came since the last one: a quiet workspace's runs mostly send nothing, a busy one's
    # fill batches of 1,000. Runs with something to send: about min(runs, captures); then whole batches.
    batches_day = sum(
        min(r, c) * math.ceil(c / min(r, c) * f["batches_per_contact"]) for r, c in zip(per_day, captures, strict=True)
    ) + sum(math.ceil(b * f["batches_per_contact"]) for b in backlogs)
    top = sorted(captures, reverse=True)
    share_top1 = sum(top[: max(1, n // 100)]) / sum(captures)

    latency = args.latency_ms / 1000
    # A run holds its slot for its overhead (measured on the emulator, plus one round trip for the
    # schema fetch and one for its push at the destination's latency) and its contacts at one project's pace.
    run_overhead = f["empty_run_wall_seconds"] + 2 * latency
    rate = min(PACE_CONTACTS_PER_SECOND, 1e6 / f["worker_cpu_us_per_contact"])
    slot_seconds = runs_day * run_overhead + contacts_day / rate
    cpu_seconds = (
        contacts_day * f["worker_cpu_us_per_contact"] / 1e6 + runs_day * f["worker_cpu_ms_per_empty_run"] / 1e3
    )
    db_cpu = contacts_day * f["database_cpu_us_per_contact"] / 1e6 + runs_day * f["database_cpu_ms_per_empty_run"] / 1e3
    peak = args.peak_factor / DAY / args.utilisation
    slots = math.ceil(slot_seconds * peak)
    cores = cpu_seconds * peak
    # Rows: a contact and its outbox row at capture; the claim and the outcome update the outbox row; one log row.
    rows_inserted = contacts_day * 3 + runs_day
    rows_updated = contacts_day * 2 + runs_day * 3  # a run: started, its counts per batch (~1), finished
    wal_day = (
        contacts_day * (f["wal_bytes_per_contact_captured"] + f["wal_bytes_per_contact_synced"])
        + runs_day * f["wal_bytes_per_empty_run"]
    )
    log_size = contacts_day * retention * f["log_row_bytes"]
    outbox_year = contacts_day * 365 * f["outbox_row_bytes"]
    contacts_year = contacts_day * 365 * f["contact_row_bytes"]
    runs_year = runs_day * 365 * f["run_row_bytes"]
    redis_ops = (batches_day * f["redis_commands_per_batch"] + runs_day * f["redis_commands_per_empty_run"]) / DAY
    redis_idle = slots * f["redis_commands_per_second_idle_worker"]

    print(
        f"model: {n:,} workspaces (seed {args.seed}); captures/day lognormal median {args.median_captures:g} sigma "
        f"{args.sigma:g}; frequencies {args.frequency_mix} (minutes:share, 0 = manual); {args.backfills_per_day} "
        f"backfills/day, lognormal median {args.median_backlog:,} sigma {args.backlog_sigma:g}, capped at "
        f"{args.max_backlog:,}; destination latency {args.latency_ms} ms; peak hour {args.peak_factor:g}x the "
        f"average; target utilisation {args.utilisation:.0%}; figures from {args.figures or 'DEFAULT_FIGURES'}"
    )
    print(
        f"  captures per workspace per day: p50 {_percentile(captures, 50):,.0f}, "
        f"p90 {_percentile(captures, 90):,.0f}, "
        f"p99 {_percentile(captures, 99):,.0f}, max {top[0]:,.0f}; the top 1% capture {share_top1:.0%}"
    )
    print(
        f"  per day: {contacts_day:,.0f} contacts ({sum(backlogs):,.0f} of them backfills, largest "
        f"{max(backlogs, default=0):,.0f}), {runs_day:,.0f} runs, {batches_day:,.0f} bulkUpdate batches"
    )
    print(
        f"  workers: {cpu_seconds / 3600:,.1f} CPU-hours/day ({cpu_seconds / DAY:.2f} cores on average), "
        f"{slot_seconds / 3600:,.1f} slot-hours/day (a run holds its slot while it waits on the destination: "
        f"{runs_day * run_overhead / slot_seconds:.0%} of it is run overhead); at the peak hour and "
        f"{args.utilisation:.0%} utilisation: {slots} worker slots (processes with pool solo), {cores:.1f} cores"
    )
    print(
        f"  PostgreSQL: {rows_inserted:,.0f} rows inserted and {rows_updated:,.0f} updated per day "
        f"({(rows_inserted + rows_updated) * args.peak_factor / DAY:,.0f} row writes/s at the peak hour), "
        f"WAL {_bytes(wal_day)}/day, CPU {db_cpu / DAY:.2f} cores on average ({db_cpu * peak:.1f} at the peak "
        f"hour and {args.utilisation:.0%})"
    )
    print(
        f"  tables: log rows {_bytes(log_size)} at {retention} days' retention "
        f"({contacts_day * retention:,.0f} rows); never deleted, per year: outbox {_bytes(outbox_year)}, "
        f"contacts {_bytes(contacts_year)}, runs {_bytes(runs_year)}"
    )
    print(
        f"  Redis: {redis_ops:,.0f} commands/s on average from runs and batches, {redis_ops * args.peak_factor:,.0f} "
        f"at the peak hour, plus {redis_idle:,.0f}/s from {slots} workers polling the broker"
    )
    _slot_sharing(args, rng, frequency, captures, run_overhead, rate, slots)


def _slot_sharing(args, rng, frequency, captures, overhead: float, rate: float, slots: int) -> None:
    """One peak hour of runs on ``slots`` slots: the small runs' wait, run-to-completion against slices."""
    hour = args.window
    arrivals: list[tuple[float, float, bool]] = []  # (time, contacts, small)
    for minutes, daily in zip(frequency, captures, strict=True):
        if not minutes:
            continue  # manual presses: a few a day, left out of the window
        per_run = daily * args.peak_factor * minutes / (24 * 60)
        offset = rng.uniform(0, minutes * 60)
        t = offset
        while t < hour:
            arrivals.append((t, per_run, True))
            t += minutes * 60
    burst = [min(b, args.max_backlog) for b in _lognormal(rng, args.burst_backlog, args.backlog_sigma, args.burst)]
    arrivals += [(0.0, b, False) for b in burst]
    arrivals.sort()
    work = sum(overhead + c / rate for _, c, _ in arrivals)
    print(
        f"  slot sharing, {hour:g} s of the peak hour on {slots} slots: {len(arrivals):,} runs "
        f"({args.burst} backfills arriving at once at the start, {sum(burst):,.0f} contacts), "
        f"{work / hour / slots:.0%} of the slots' time; "
        f"a run's overhead {overhead * 1000:.0f} ms, its contacts at {rate:,.0f}/s"
    )
    for slice_seconds in [math.inf, *args.slices]:
        waits, backfill_done = _simulate(arrivals, slots, overhead, rate, slice_seconds)
        name = "run to completion" if slice_seconds == math.inf else f"slices of {slice_seconds:g} s"
        print(
            f"    {name:<18} small runs' wait (arrival to done): p50 {_percentile(waits, 50):7.1f}s  "
            f"p95 {_percentile(waits, 95):7.1f}s  p99 {_percentile(waits, 99):7.1f}s   "
            f"backfills done after {min(backfill_done, default=0):,.0f}-{max(backfill_done, default=0):,.0f}s"
        )


def _simulate(arrivals, slots: int, overhead: float, rate: float, slice_seconds: float):
    """FIFO queue of runs on ``slots`` slots; a run works at most ``slice_seconds`` (its overhead included),
    then queues again at the back with the rest. Returns (small runs' waits, backfills' finishing times)."""
    events: list[tuple[float, int, int]] = []  # (time, order, job) of slices ending
    queue: deque[int] = deque()
    left = [c for _, c, _ in arrivals]
    small = [s for _, _, s in arrivals]
    arrived = [t for t, _, _ in arrivals]
    free, order, i = slots, 0, 0
    waits: list[float] = []
    done_backfills: list[float] = []
    now = 0.0

    def start(job: int) -> None:
        nonlocal free, order
        free -= 1
        need = overhead + left[job] / rate
        took = min(need, max(slice_seconds, overhead + 1 / rate))
        left[job] = max(0.0, left[job] - (took - overhead) * rate) if took < need else 0.0
        order += 1
        heapq.heappush(events, (now + took, order, job))

    while i < len(arrivals) or events:
        if i < len(arrivals) and (not events or arrivals[i][0] <= events[0][0]):
            now = arrivals[i][0]
            queue.append(i)
            i += 1
        else:
            now, _, job = heapq.heappop(events)
            free += 1
            if left[job] > 0:
                queue.append(job)  # the rest queues behind whatever arrived meanwhile
            elif small[job]:
                waits.append(now - arrived[job])
            else:
                done_backfills.append(now)
        while free and queue:
            start(queue.popleft())
    return waits, done_backfills


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="unit costs of a real sync on the bench database")
    m.add_argument("--contacts", type=int, default=20_000)
    m.add_argument("--empty-runs", type=int, default=20, help="runs with nothing to send, for the per-run costs")
    m.add_argument("--idle-seconds", type=float, default=5.0, help="how long the idle worker's Redis polling is read")
    m.add_argument("--latency-ms", type=int, default=0, help="the emulator's delay before every answer")
    m.add_argument("--json", help="write the figures to this file")
    s = sub.add_parser("model", help="10,000 workspaces from the measured figures")
    s.add_argument("--figures", help="a file `measure --json` wrote (default: DEFAULT_FIGURES)")
    s.add_argument("--workspaces", type=int, default=10_000)
    s.add_argument("--seed", type=int, default=12)
    s.add_argument("--median-captures", type=float, default=30.0, help="captures per workspace per day, median")
    s.add_argument("--sigma", type=float, default=2.0, help="lognormal sigma of the daily captures (the tail)")
    s.add_argument(
        "--frequency-mix",
        default="15:0.3,60:0.4,360:0.1,1440:0.1,0:0.1",
        help="sync frequencies in minutes and their shares (0: manual only)",
    )
    s.add_argument("--backfills-per-day", type=int, default=20, help="workspaces connecting with a backlog a day")
    s.add_argument("--median-backlog", type=int, default=20_000)
    s.add_argument("--backlog-sigma", type=float, default=1.5)
    s.add_argument("--max-backlog", type=int, default=10_000_000)
    s.add_argument("--latency-ms", type=int, default=250, help="the destination's answer time")
    s.add_argument("--peak-factor", type=float, default=3.0, help="the busiest hour against the day's average")
    s.add_argument("--utilisation", type=float, default=0.6, help="target busy share of the workers at the peak")
    s.add_argument("--retention-days", type=int, help="default: SYNC_LOG_RETENTION_DAYS as measured")
    s.add_argument("--burst", type=int, default=50, help="backfills arriving at once in the simulated window")
    s.add_argument("--burst-backlog", type=int, default=500_000, help="their backlog, lognormal median")
    s.add_argument("--window", type=float, default=600.0, help="seconds of the peak hour simulated")
    s.add_argument(
        "--slices", default="10,60", type=lambda v: [float(x) for x in v.split(",")], help="slice lengths, seconds"
    )
    args = parser.parse_args()
    if args.command == "measure":
        os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flowsync_bench_capacity")
        measure(args)
    else:
        model(args)


if __name__ == "__main__":
    main()
