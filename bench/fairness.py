"""Fairness benchmark: big backlogs and small workspaces sharing one worker process.

    .venv/bin/python bench/fairness.py [--big 100000] [--bigs 4] [--smalls 20] [--small 200]
        [--concurrency 4] [--latency-ms 0] [--slice-seconds S] [--no-slices]

Every workspace is connected to its own emulated Iterable project (its own API key, so its own
5 bulkUpdate/s budget), with the emulator's limits on and the client's pacing on. One Celery worker
process (prefork, --concurrency slots) serves them all. Three phases, each on freshly seeded
workspaces (contacts and outbox rows written with SQL, as bench/sync.py does):

1. the small workspaces alone: each presses Sync Now at once; the time from Sync Now to its run's end;
2. the big workspaces alone: the same, timed until the last big run ends;
3. both: the big ones press Sync Now, and once every big run has delivered its first batch (every
   worker slot busy with a backlog), the small ones do.

Printed: the small runs' p50 and p95 alone and with the big ones, and their ratio (issue target
<= 2x); the big runs' time to the last one's end alone and with the small ones, and that ratio (target
<= 1.2x). ``--no-slices`` runs the worker with SYNC_SLICE_SECONDS=0 (each run in one task, as before
time slicing) for the comparison. BENCH_DATABASE_URL and REDIS_URL as for bench/sync.py.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import celery_worker  # noqa: E402
from bench.sync import _seed, bench_started, vacuum_sync_tables  # noqa: E402


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _workspaces(bench, emulator, sizes: list[int], label: str) -> list[int]:
    """One workspace per size, each on a project of its own; their integration ids."""
    ids = []
    for size in sizes:
        api_key = f"fair-{uuid.uuid4().hex}"
        emulator.add_key(api_key, project_id=int(uuid.uuid4().int % 1_000_000_000))
        data = {"api_key": api_key, "region": "us", "project_type": "hybrid"}
        ids.append(_seed(f"{label} {uuid.uuid4().hex[:6]}", size, "iterable", data, bench.targets()))
    return ids


def _press(integration_ids: list[int]) -> dict[int, float]:
    """Sync Now for each; run id -> the moment it was pressed (epoch seconds)."""
    from integrations.models import Integration
    from integrations.sync import sync_now

    pressed = {}
    for integration in Integration.objects.filter(pk__in=integration_ids).order_by("pk"):
        at = time.time()
        pressed[sync_now(integration=integration).pk] = at
    return pressed


def _wait_ended(pressed: dict[int, float], worker: subprocess.Popen) -> dict[int, float]:
    """Wait for every run to end; run id -> seconds from Sync Now to its end."""
    from sync_logs.models import SyncRun

    while True:
        runs = list(SyncRun.objects.filter(pk__in=pressed))
        if all(not run.is_active for run in runs):
            break
        if worker.poll() is not None:
            raise SystemExit(f"The worker exited ({worker.returncode}) before the runs ended")
        time.sleep(0.2)
    bad = [run for run in runs if run.status != "succeeded"]
    if bad:
        raise SystemExit(f"{len(bad)} run(s) did not succeed: {bad[0].status} {bad[0].error_summary}")
    return {run.pk: run.finished_at.timestamp() - pressed[run.pk] for run in runs}


def _wait_busy(pressed: dict[int, float], batch: int) -> None:
    """Until every run of ``pressed`` has delivered its first batch: every slot holds a backlog."""
    from sync_logs.models import SyncRun

    while SyncRun.objects.filter(pk__in=pressed, delivered__lt=batch).exists():
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big", type=int, default=100_000, help="contacts of each big workspace")
    parser.add_argument("--bigs", type=int, default=4)
    parser.add_argument("--small", type=int, default=200, help="contacts of each small workspace")
    parser.add_argument("--smalls", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4, help="the worker process's slots")
    parser.add_argument("--latency-ms", type=int, default=0, help="the emulator's delay before every answer")
    parser.add_argument("--slice-seconds", type=float, help="SYNC_SLICE_SECONDS for the worker (its default if unset)")
    parser.add_argument("--no-slices", action="store_true", help="each run in one task (SYNC_SLICE_SECONDS=0)")
    args = parser.parse_args()
    bench_args = SimpleNamespace(
        destination="iterable", no_limit=False, latency_ms=args.latency_ms, batch=1000, refused=0.0
    )
    with bench_started(bench_args) as (bench, env, _):
        from django.conf import settings

        emulator = bench.control()
        queue = f"fair-{uuid.uuid4().hex[:8]}"
        worker_env = {**os.environ, **env}
        if args.no_slices:
            worker_env["SYNC_SLICE_SECONDS"] = "0"
        elif args.slice_seconds is not None:
            worker_env["SYNC_SLICE_SECONDS"] = str(args.slice_seconds)
        settings.CELERY_TASK_DEFAULT_QUEUE = queue
        worker = celery_worker(worker_env, queue, "--concurrency", str(args.concurrency))
        try:
            time.sleep(4)  # let it connect
            slicing = "off (one task per run)" if args.no_slices else f"SYNC_SLICE_SECONDS={args.slice_seconds}"
            if not args.no_slices and args.slice_seconds is None:
                slicing = f"SYNC_SLICE_SECONDS={settings.SYNC_SLICE_SECONDS:g} (default)"
            print(
                f"one worker process, {args.concurrency} slots, slices {slicing}; {args.bigs} x {args.big:,} and "
                f"{args.smalls} x {args.small:,} contacts, each workspace on its own project (5 bulkUpdate/s), "
                f"latency {args.latency_ms} ms"
            )
            small_ids = _workspaces(bench, emulator, [args.small] * args.smalls, "Small alone")
            vacuum_sync_tables()
            alone_small = _wait_ended(_press(small_ids), worker)
            big_ids = _workspaces(bench, emulator, [args.big] * args.bigs, "Big alone")
            vacuum_sync_tables()
            alone_big = _wait_ended(_press(big_ids), worker)
            big_ids = _workspaces(bench, emulator, [args.big] * args.bigs, "Big mixed")
            small_ids = _workspaces(bench, emulator, [args.small] * args.smalls, "Small mixed")
            vacuum_sync_tables()
            big_pressed = _press(big_ids)
            _wait_busy(big_pressed, 1000)
            small_pressed = _press(small_ids)
            mixed_small = _wait_ended(small_pressed, worker)
            mixed_big = _wait_ended(big_pressed, worker)
        finally:
            worker.terminate()
            worker.wait(30)
    a50, a95 = statistics.median(alone_small.values()), _p95(list(alone_small.values()))
    m50, m95 = statistics.median(mixed_small.values()), _p95(list(mixed_small.values()))
    big_alone, big_mixed = max(alone_big.values()), max(mixed_big.values())
    print(
        f"small, Sync Now to end: alone p50 {a50:.2f}s p95 {a95:.2f}s; "
        f"beside the big ones p50 {m50:.2f}s p95 {m95:.2f}s"
    )
    print(f"   p95 ratio {m95 / a95:.2f}x (target <= 2x)")
    print(f"big, Sync Now to the last one's end: alone {big_alone:.1f}s, beside the small ones {big_mixed:.1f}s")
    print(f"   ratio {big_mixed / big_alone:.2f}x (target <= 1.2x); contacts/s alone "
          f"{args.bigs * args.big / big_alone:,.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
