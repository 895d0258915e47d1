"""Sync engine benchmark: N contacts in PostgreSQL pushed to an emulator by a real Celery worker.

    .venv/bin/python bench/sync.py [--destination iterable|customerio] [--contacts 100000] [--million]
        [--sizes 10000,100000] [--no-limit] [--batch 1000] [--refused 0.005] [--latency-ms 0] [--no-spec]

For each size it seeds the contacts (and their outbox rows) with SQL, starts the
emulator and a worker (solo pool, so the sync runs in the process whose peak RSS
is read from /proc), presses Sync Now and waits for the run to finish. Prints
contacts/s, the run's time, the worker's peak RSS, and the time against what the
destination's limit allows. Issue targets: <= 1.10 x the limit's time with the
limit on; >= 10,000 contacts/s with it off; worker memory flat as N grows tenfold
(run with --sizes 10000,100000). BENCH_DATABASE_URL names the database (created
when missing, kept between runs); REDIS_URL the Redis the worker and the rate
buckets use.

--destination iterable (the default): Iterable's emulator; the limit is its
documented bulkUpdate limit (5 requests/s of --batch users each).

--destination customerio: Customer.io's emulator, with one workspace whose Site ID
and Track API key the bench makes up, identifying people by email (identify_by
"email": the contacts' email is the identifier; first_name goes to first_name, the
numeric field to a new attribute `age`, the text field to a new attribute `visit`).
The limit is Flowsync's own pace, CUSTOMERIO_RATE_PER_SECOND batch requests/s per
workspace (default 100) of at most 100 operations each: N / (100 x that) seconds.
The emulator answers 429 above that rate, so a 429 means the pacing let too much
through. The engine still claims --batch contacts at a time; the push splits them
into requests of at most 100. The batch requests and the 429s are printed.

--refused P (Iterable only) gives a share P of the contacts a value Iterable refuses: every contact has a
text field `visit` mapped to a new Iterable field, holding a date (so Iterable types the field as a date from
its first value, reference 3), except the refused share, which holds "not sure". Those come back as
RequestFieldsTypesMismatched naming the value. Issue target: with the limit on, the time with
--refused 0.005 <= 1.3 x the time without. The bulkUpdate requests (and how many were refused) are printed.

--no-limit takes the rate limit away on both sides: the emulator answers no 429 and
the worker does not pace itself (Iterable: ITERABLE_CLIENT_PACING=0; Customer.io:
CUSTOMERIO_RATE_PER_SECOND set far above anything a worker reaches). With the limit on,
the client paces itself under the limit (DESIGN.md, guarantee 5), so no run can beat
the client's pace; the header prints that ceiling.

--latency-ms N makes the emulator wait N ms before every answer, as a distant API would.

--no-spec (Customer.io only): the emulator keeps its own checks of each operation but skips the
OpenAPI document's schema check, which tries every batch-item alternative in turn: about 0.4 ms
of the emulator's CPU per operation, 35-45 ms per request of 100, several times the 10.5 ms the
pace leaves between two requests. With it on, the run measures the emulator; with it off, Flowsync.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402 - after the path is set
    BENCH_ENV,
    celery_worker,
    cpu_seconds,
    database_cpu_seconds,
    ensure_database,
    free_port,
    peak_rss_mb,
)

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/flowsync_bench_sync"
BULK_RPS = 5
# Far above what one worker sends, so the rate bucket never makes it wait: Customer.io's client has no
# pacing switch of its own, and its rate setting is an integer.
UNPACED_CUSTOMERIO_RATE = 1_000_000


class IterableBench:
    """Iterable: a fresh project (API key) per size, so each run starts from an empty schema."""

    name = "iterable"
    module = "emulators.iterable"
    push_path = "/api/users/bulkUpdate"

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        self.args, self.port = args, port

    def env(self) -> dict[str, str]:
        return {
            "ITERABLE_US_BASE_URL": f"http://127.0.0.1:{self.port}/us",
            "ITERABLE_EU_BASE_URL": f"http://127.0.0.1:{self.port}/eu",
            "ITERABLE_CLIENT_PACING": "0" if self.args.no_limit else "1",
        }

    def worker_env(self) -> dict[str, str]:
        return {}

    def emulator_options(self) -> list[str]:
        return ["--no-rate-limits"] if self.args.no_limit else []

    def header(self) -> list[str]:
        from integrations.destinations.iterable import ENDPOINT_RATES, PACE

        args = self.args
        limit = "off" if args.no_limit else f"on ({BULK_RPS} bulkUpdate/s)"
        pace = ENDPOINT_RATES["POST /api/users/bulkUpdate"] * PACE
        lines = [
            f"emulator rate limit {limit}, batch {args.batch}, PostgreSQL, worker pool solo, "
            f"refused share {args.refused:g}"
        ]
        if args.no_limit:
            lines.append("client pacing off (ITERABLE_CLIENT_PACING=0): the engine's own speed")
        else:
            lines.append(f"client pace {pace:.2f} bulkUpdate/s, so at most {args.batch * pace:,.0f} contacts/s")
        return lines

    def control(self):
        from emulators.iterable.control import EmulatorControl

        return EmulatorControl(f"http://127.0.0.1:{self.port}")

    def account(self, emulator, count: int) -> tuple[str, dict]:
        api_key = f"bench-{uuid.uuid4().hex}"
        emulator.add_key(api_key, project_id=count)
        return "iterable", {"api_key": api_key, "region": "us", "project_type": "hybrid"}

    def targets(self) -> dict[str, str]:
        return {"email": "email", "first_name": "firstName", "age": "age", "visit": "visit"}

    def counters(self, stats: dict) -> tuple[int, int]:
        return stats["counts"].get(self.push_path, 0), sum(stats["rate_limited"].values())

    def allowed(self, count: int) -> float:
        return count / (self.args.batch * BULK_RPS)

    def extra(self, emulator, run) -> dict:
        # The emulator keeps the last 500 requests' bodies: enough at the sizes this option is run with.
        logged = emulator.requests(self.push_path) if self.args.refused else []
        return {"refusals": sum(1 for r in logged if r["at"] >= run.started_at.timestamp() and _refused_in(r["body"]))}

    def second_line(self, r: dict) -> str:
        return (
            f"failed {r['failed']:,}   bulkUpdate requests {r['requests']:,} "
            f"({r['refusals']:,} of them refused whole)   answered 429: {r['limited']:,}"
        )


class CustomerIOBench:
    """Customer.io: one made-up workspace for every size (each size's contacts have emails of their own)."""

    name = "customerio"
    module = "emulators.customerio"

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        self.args, self.port = args, port
        self.site_id = f"bench-{uuid.uuid4().hex[:8]}"
        self.api_key = uuid.uuid4().hex

    def env(self) -> dict[str, str]:
        base = f"http://127.0.0.1:{self.port}"
        return {
            "CUSTOMERIO_TRACK_US_BASE_URL": f"{base}/us",
            "CUSTOMERIO_TRACK_EU_BASE_URL": f"{base}/eu",
            "CUSTOMERIO_APP_US_BASE_URL": f"{base}/us-api",
            "CUSTOMERIO_APP_EU_BASE_URL": f"{base}/eu-api",
        }

    def worker_env(self) -> dict[str, str]:
        # The worker's only: the bench's own settings keep the pace a run is measured against.
        return {"CUSTOMERIO_RATE_PER_SECOND": str(UNPACED_CUSTOMERIO_RATE)} if self.args.no_limit else {}

    def pace_rate(self) -> int:
        """Flowsync's pace per workspace, from the settings (CUSTOMERIO_RATE_PER_SECOND when set)."""
        from django.conf import settings

        return settings.CUSTOMERIO_RATE_PER_SECOND

    def emulator_options(self) -> list[str]:
        options = ["--workspace", f"{self.site_id}:{self.api_key}", "--identify-by", "email"]
        if not self.args.no_limit:
            # Customer.io documents no 429 for Track: the emulator holds Flowsync to the pace it claims.
            options += ["--rate-limit-rps", str(self.pace_rate())]
        if self.args.no_spec:
            # Not a file, so the emulator loads no OpenAPI document (spec.OpenAPISpec.load).
            options += ["--spec", os.devnull]
        return options

    def header(self) -> list[str]:
        from integrations.destinations.customerio.client import TrackClient
        from integrations.destinations.customerio.rules import MAX_BATCH_OPERATIONS

        args = self.args
        rate = self.pace_rate()
        limit = "off" if args.no_limit else f"on ({rate} Track requests/s per workspace)"
        lines = [
            f"Customer.io emulator rate limit {limit}, engine batch {args.batch}, "
            f"at most {MAX_BATCH_OPERATIONS} operations per request, PostgreSQL, worker pool solo, "
            f"identify_by email, latency {args.latency_ms} ms, "
            f"OpenAPI check of each operation {'off' if args.no_spec else 'on'}"
        ]
        if args.no_limit:
            lines.append(
                f"client pacing off (the worker's CUSTOMERIO_RATE_PER_SECOND={UNPACED_CUSTOMERIO_RATE:,}): "
                "the engine's own speed"
            )
        else:
            pace = rate * TrackClient.pace
            lines.append(
                f"client pace {pace:.2f} batch requests/s (CUSTOMERIO_RATE_PER_SECOND={rate} x {TrackClient.pace}), "
                f"so at most {MAX_BATCH_OPERATIONS * pace:,.0f} contacts/s"
            )
        return lines

    def control(self):
        from emulators.customerio.control import EmulatorControl

        return EmulatorControl(f"http://127.0.0.1:{self.port}")

    def account(self, emulator, count: int) -> tuple[str, dict]:
        return "customerio", {"site_id": self.site_id, "api_key": self.api_key, "identify_by": "email"}

    def targets(self) -> dict[str, str]:
        return {"email": "email", "first_name": "first_name", "age": "age", "visit": "visit"}

    def counters(self, stats: dict) -> tuple[int, int]:
        # Keyed by the full path: the workspace is a US one.
        return stats["counts"].get("/us/api/v2/batch", 0), sum(stats["rate_limited"].values())

    def allowed(self, count: int) -> float:
        from integrations.destinations.customerio.rules import MAX_BATCH_OPERATIONS

        return count / (MAX_BATCH_OPERATIONS * self.pace_rate())

    def extra(self, emulator, run) -> dict:
        return {"unhandled": emulator.stats()["unhandled_errors"]}

    def second_line(self, r: dict) -> str:
        return (
            f"failed {r['failed']:,}   batch requests {r['requests']:,}   answered 429: {r['limited']:,}   "
            f"emulator errors {r['unhandled']:,}"
        )


BENCHES = {bench.name: bench for bench in (IterableBench, CustomerIOBench)}


def _setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def _seed(workspace_slug: str, count: int, kind: str, data: dict, targets: dict[str, str], refused: float = 0.0) -> int:
    """A workspace connected to the emulator and mapped, with ``count`` contacts queued. Returns the integration id."""
    from django.db import connection

    from accounts.models import User
    from field_mapping.services import RowChoice, mapping_save
    from flows.models import Contact, FieldType, FlowField
    from flows.services import flow_create, flow_field_add
    from integrations.models import OutboxItem
    from integrations.services import integration_connect
    from workspaces.services import workspace_create

    user, _ = User.objects.get_or_create(email="bench@example.com")
    workspace = workspace_create(name=workspace_slug, owner=user)
    flow = flow_create(workspace=workspace, name="Bench", actor=user)
    flow_field_add(flow=flow, kind=FlowField.Kind.STANDARD, key="first_name", actor=user)
    flow_field_add(flow=flow, kind="custom", key="age", label="Age", field_type=FieldType.NUMBER, actor=user)
    flow_field_add(flow=flow, kind="custom", key="visit", label="Visit", field_type=FieldType.TEXT, actor=user)
    integration = integration_connect(workspace=workspace, actor=user, kind=kind, data=data)
    mapping_save(
        integration=integration,
        actor=user,
        choices=[
            RowChoice("email", targets["email"]),
            RowChoice("first_name", targets["first_name"]),
            RowChoice("age", targets["age"], create_new=True),
            RowChoice("visit", targets["visit"], create_new=True),
        ],
    )
    tag = uuid.uuid4().hex[:6]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Contact._meta.db_table} (workspace_id, flow_id, data, email, source, created_at) "
            "SELECT %s, %s, jsonb_build_object('email', 'u' || g || %s || '@example.com', 'first_name', "
            "'Name' || g, 'age', g %% 90, 'visit', "
            # floor(g * P) steps up once every 1/P contacts: the refused share, spread evenly, never the first.
            "CASE WHEN floor(g * %s) <> floor((g - 1) * %s) THEN 'not sure' "
            "ELSE to_char(date '2024-01-01' + g %% 365, 'YYYY-MM-DD') END), "
            "'u' || g || %s || '@example.com', 'api', now() "
            "FROM generate_series(1, %s) g",
            [workspace.pk, flow.pk, tag, refused, refused, tag, count],
        )
        cursor.execute(
            f"INSERT INTO {OutboxItem._meta.db_table} (integration_id, contact_id, status, attempts, "
            "next_attempt_at, updated_at, error_code, error_message) "
            f"SELECT %s, id, 'pending', 0, now(), now(), '', '' FROM {Contact._meta.db_table} WHERE workspace_id = %s",
            [integration.pk, workspace.pk],
        )
    return integration.pk


def vacuum_sync_tables() -> None:
    """VACUUM ANALYZE the tables a sync works on, as autovacuum keeps them in production. The bench's
    database is kept between runs, and where autovacuum is off (some development machines) every run
    would leave its dead rows behind, each run then slower than the last."""
    from django.db import connection

    from flows.models import Contact
    from integrations.models import OutboxItem
    from sync_logs.models import SyncRecord, SyncRun

    with connection.cursor() as cursor:
        for model in (OutboxItem, Contact, SyncRecord, SyncRun):
            cursor.execute(f"VACUUM (ANALYZE) {model._meta.db_table}")


def _one_size(count: int, bench, env: dict[str, str], emulator_pid: int) -> dict:
    from integrations.models import Integration
    from integrations.sync import sync_now
    from sync_logs.models import SyncRun

    emulator = bench.control()
    kind, data = bench.account(emulator, count)
    integration_id = _seed(
        f"Bench {count} {uuid.uuid4().hex[:4]}", count, kind, data, bench.targets(), bench.args.refused
    )
    vacuum_sync_tables()
    requests_before, limited_before = bench.counters(emulator.stats())
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    worker_env = {**env, **bench.worker_env(), "CELERY_QUEUE": queue}
    worker = celery_worker(worker_env, queue, "--pool", "solo")
    try:
        time.sleep(3)  # let it connect
        from django.conf import settings

        settings.CELERY_TASK_DEFAULT_QUEUE = queue
        cpu_before = cpu_seconds(worker.pid), cpu_seconds(emulator_pid), database_cpu_seconds()
        run = sync_now(integration=Integration.objects.get(pk=integration_id))
        started = time.monotonic()
        while True:
            run.refresh_from_db()
            if not run.is_active:
                break
            if worker.poll() is not None:
                raise SystemExit(
                    f"The worker exited ({worker.returncode}) before the run ended: start it by hand to see why"
                )
            time.sleep(0.5)
        wall = time.monotonic() - started
        rss = peak_rss_mb(worker.pid)
        cpu = (
            cpu_seconds(worker.pid) - cpu_before[0],
            cpu_seconds(emulator_pid) - cpu_before[1],
            database_cpu_seconds() - cpu_before[2],
        )
    finally:
        worker.terminate()
        worker.wait(30)
    run = SyncRun.objects.get(pk=run.pk)
    requests_after, limited_after = bench.counters(emulator.stats())
    seconds = (run.finished_at - run.started_at).total_seconds()
    return {
        "count": count,
        "status": run.status,
        "delivered": run.delivered,
        "failed": run.failed,
        "requests": requests_after - requests_before,
        "limited": limited_after - limited_before,
        "seconds": seconds,
        "wall": wall,
        "rate": run.delivered / seconds if seconds else 0,
        "rss": rss,
        "worker_cpu": cpu[0],
        "emulator_cpu": cpu[1],
        "database_cpu": cpu[2],
        "ratio": seconds / bench.allowed(count),
        **bench.extra(emulator, run),
    }


def _refused_in(body) -> bool:
    """Whether a logged bulkUpdate body carried a refused value (the emulator refused it whole)."""
    users = (body or {}).get("users") or []
    return any((u.get("dataFields") or {}).get("visit") == "not sure" for u in users)


@contextlib.contextmanager
def bench_started(args) -> Iterator[tuple[Any, dict[str, str], int]]:
    """The bench for ``args.destination``: its database (migrated), Django set up in this process, and
    its emulator running on a free port. Yields (bench, the worker's environment, the emulator's pid)."""
    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    ensure_database(db_url)
    port = free_port()
    bench = BENCHES[args.destination](args, port)
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": db_url,
        "DEBUG": "0",
        **BENCH_ENV,
        "LOG_LEVEL": "WARNING",
        # The engine's and the exchange log's settings from this shell (SYNC_SLICE_SECONDS=0 python bench/sync.py ...):
        # a comparison.
        **{name: value for name, value in os.environ.items() if name.startswith(("SYNC_", "EXCHANGE_LOG_"))},
        "SYNC_BATCH_SIZE": str(args.batch),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        **bench.env(),
    }
    # Settings first: the emulator's options may read them (Customer.io's limit is Flowsync's pace).
    _setup_django(env)
    emulator_cmd = [sys.executable, "-m", bench.module, "--port", str(port), *bench.emulator_options()]
    if args.latency_ms:
        emulator_cmd += ["--latency-ms", str(args.latency_ms)]
    emulator = subprocess.Popen(emulator_cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        time.sleep(1)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env={**os.environ, **env},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        yield bench, env, emulator.pid
    finally:
        emulator.terminate()
        emulator.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--destination", choices=sorted(BENCHES), default="iterable")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1,000,000 contacts")
    parser.add_argument("--sizes", help="comma-separated sizes instead of --contacts (e.g. 10000,100000)")
    parser.add_argument("--no-limit", action="store_true", help="no emulator rate limit and no client pacing")
    parser.add_argument("--batch", type=int, default=1000, help="contacts the engine claims at a time")
    parser.add_argument("--refused", type=float, default=0.0, help="share of contacts with a value Iterable refuses")
    parser.add_argument("--latency-ms", type=int, default=0, help="the emulator's delay before every answer")
    parser.add_argument(
        "--no-spec", action="store_true", help="Customer.io's emulator skips the OpenAPI schema check of each operation"
    )
    args = parser.parse_args()
    if args.refused and args.destination != "iterable":
        parser.error("--refused is Iterable's: Customer.io types no attribute from its first value")
    if args.no_spec and args.destination != "customerio":
        parser.error("--no-spec is for Customer.io's emulator")
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [1_000_000 if args.million else args.contacts]

    with bench_started(args) as (bench, env, emulator_pid):
        for line in bench.header():
            print(line)
        for count in sizes:
            r = _one_size(count, bench, env, emulator_pid)
            print(
                f"N={r['count']:>9,}  {r['status']:<9} delivered {r['delivered']:,} in {r['seconds']:.1f}s "
                f"= {r['rate']:,.0f} contacts/s   worker peak RSS {r['rss']:.0f} MB   "
                f"time / limit's minimum {r['ratio']:.2f}x"
            )
            print(f"{'':13}{bench.second_line(r)}")
            per_contact = 1e6 / max(r["delivered"], 1)
            print(
                f"{'':13}CPU: worker {r['worker_cpu']:.1f}s ({r['worker_cpu'] * per_contact:.0f} us/contact), "
                f"emulator {r['emulator_cpu']:.1f}s ({r['emulator_cpu'] * per_contact:.0f} us/contact), "
                f"PostgreSQL {r['database_cpu']:.1f}s ({r['database_cpu'] * per_contact:.0f} us/contact), "
                f"on {os.cpu_count()} cores"
            )


if __name__ == "__main__":
    main()
