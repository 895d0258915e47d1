"""The floor under the sync engine: a bare loop doing a sync's minimal work, beside the engine, in one run.

    .venv/bin/python bench/floor.py [--destination iterable|customerio] [--contacts 50000] [--batch 1000]

Both sides get the same contacts (seeded with SQL, as bench/sync.py does), the same emulator with its
rate limits off, and the same tables. The bare loop is one thread with psycopg and requests and no
Django: claim a batch (the engine's UPDATE ... SKIP LOCKED ... RETURNING), build each contact's
request record with the mapping written out by hand, POST it, mark the rows delivered and COPY one log
row per contact with its payload, then the run's counts, each batch in two transactions. No lease, no
mapping plan, no coercion or limits checks, no pipelining. The engine is then timed on its own
contacts by a real Celery worker (bench/sync.py's measurement, pacing off). Printed: contacts/s of
each, their ratio, and CPU per contact of the process doing the sync, the emulator and PostgreSQL.

Issue target (bench/sync.py --no-limit): at least the bare loop's speed, and at least 2x one Iterable
project's 5,000 contacts/s. BENCH_DATABASE_URL and REDIS_URL as for bench/sync.py.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import cpu_seconds, database_cpu_seconds  # noqa: E402
from bench.sync import _one_size, _seed, bench_started, vacuum_sync_tables  # noqa: E402

CIO_OPERATIONS = 100  # Customer.io's most operations per batch request


class IterablePush:
    def __init__(self, port: int, data: dict) -> None:
        self.url = f"http://127.0.0.1:{port}/us/api/users/bulkUpdate"
        self.headers = {"Api-Key": data["api_key"], "Content-Type": "application/json"}

    def record(self, contact: dict) -> dict:
        return {
            "email": contact["email"].lower(),
            "dataFields": {"firstName": contact["first_name"], "age": contact["age"], "visit": contact["visit"]},
        }

    def bodies(self, records: list[bytes]) -> list[bytes]:
        return [b'{"users":[' + b",".join(records) + b'],"createNewFields":true}']


class CustomerIOPush:
    def __init__(self, port: int, data: dict) -> None:
        self.url = f"http://127.0.0.1:{port}/us/api/v2/batch"
        token = base64.b64encode(f"{data['site_id']}:{data['api_key']}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def record(self, contact: dict) -> dict:
        return {
            "type": "person",
            "action": "identify",
            "identifiers": {"email": contact["email"].lower()},
            "attributes": {"first_name": contact["first_name"], "age": contact["age"], "visit": contact["visit"]},
        }

    def bodies(self, records: list[bytes]) -> list[bytes]:
        return [
            b'{"batch":[' + b",".join(records[i : i + CIO_OPERATIONS]) + b"]}"
            for i in range(0, len(records), CIO_OPERATIONS)
        ]


PUSHES = {"iterable": IterablePush, "customerio": CustomerIOPush}


def bare_loop(dsn: str, integration_id: int, push, batch: int) -> dict:
    """Sync the integration's queue with the least work a sync can do; its time and CPU."""
    import orjson
    import psycopg
    import requests
    from psycopg.types.json import set_json_loads

    from flows.models import Contact
    from integrations.models import OutboxItem
    from sync_logs.models import SyncRecord, SyncRun

    outbox, records, runs = OutboxItem._meta.db_table, SyncRecord._meta.db_table, SyncRun._meta.db_table
    contacts = Contact._meta.db_table
    run = SyncRun.objects.create(integration_id=integration_id, trigger="manual", status="running")
    claim = (
        f"UPDATE {outbox} o SET status = 'in_flight', run_id = %s, claimed_at = now() "
        f"FROM {contacts} c WHERE c.id = o.contact_id AND o.id = ANY(ARRAY("
        f"SELECT id FROM {outbox} WHERE integration_id = %s AND status = 'pending' AND id > %s "
        "AND next_attempt_at <= now() ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)) "
        "RETURNING o.id, o.contact_id, c.data"
    )
    delivered_sql = (
        f"UPDATE {outbox} SET status = 'delivered', error_code = '', error_message = '' "
        "WHERE id = ANY(%s) AND run_id = %s AND status = 'in_flight'"
    )
    copy_sql = (
        f"COPY {records} (run_id, contact_id, identifier, status, error_code, destination_code, error_message, "
        "retryable, payload, created_at) FROM STDIN"
    )
    counts_sql = f"UPDATE {runs} SET total = total + %s, delivered = delivered + %s, heartbeat_at = now() WHERE id = %s"
    session = requests.Session()
    delivered, after_id = 0, 0
    cpu_before, db_before, started = cpu_seconds(), database_cpu_seconds(), time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        set_json_loads(orjson.loads, conn)
        cur = conn.cursor()
        while True:
            with conn.transaction():
                rows = cur.execute(claim, [run.pk, integration_id, after_id, batch]).fetchall()
            if not rows:
                break
            rows.sort()
            after_id = rows[-1][0]
            built = [push.record(data) for _, _, data in rows]
            encoded = [orjson.dumps(record) for record in built]
            for body in push.bodies(encoded):
                answer = session.post(push.url, data=body, headers=push.headers, timeout=30)
                answer.raise_for_status()
                answer.json()
            with conn.transaction():
                cur.execute(delivered_sql, [[row[0] for row in rows], run.pk])
                with cur.copy(copy_sql) as copy:
                    for (_, contact_id, data), payload in zip(rows, encoded, strict=True):
                        copy.write_row(
                            (
                                run.pk,
                                contact_id,
                                data["email"].lower(),
                                "delivered",
                                "",
                                "",
                                "",
                                False,
                                payload.decode(),
                                "now",
                            )
                        )
                cur.execute(counts_sql, [len(rows), len(rows), run.pk])
            delivered += len(rows)
    seconds = time.monotonic() - started
    time.sleep(0.5)  # the closed connection's backend exits and is reaped: its CPU time then counts
    SyncRun.objects.filter(pk=run.pk).update(status="succeeded")
    return {
        "delivered": delivered,
        "seconds": seconds,
        "rate": delivered / seconds if seconds else 0.0,
        "cpu": cpu_seconds() - cpu_before,
        "database_cpu": database_cpu_seconds() - db_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--destination", choices=sorted(PUSHES), default="iterable")
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    # bench/sync.py's options, as its --no-limit run takes them.
    sync_args = SimpleNamespace(
        destination=args.destination, batch=args.batch, no_limit=True, refused=0.0, latency_ms=0, no_spec=True
    )
    with bench_started(sync_args) as (bench, env, emulator_pid):
        control = bench.control()
        kind, data = bench.account(control, args.contacts + 1)  # a project of its own (Iterable)
        integration_id = _seed(f"Floor {uuid.uuid4().hex[:6]}", args.contacts, kind, data, bench.targets())
        vacuum_sync_tables()
        emulator_before = cpu_seconds(emulator_pid)
        dsn = env["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
        floor = bare_loop(dsn, integration_id, PUSHES[kind](bench.port, data), args.batch)
        floor["emulator_cpu"] = cpu_seconds(emulator_pid) - emulator_before
        engine = _one_size(args.contacts, bench, env, emulator_pid)

    print(
        f"{args.destination}, {args.contacts:,} contacts, batch {args.batch}, rate limits off, PostgreSQL, "
        f"{os.cpu_count()} cores"
    )
    for name, r, cpu in (("bare loop", floor, floor["cpu"]), ("engine", engine, engine["worker_cpu"])):
        per = 1e6 / max(r["delivered"], 1)
        print(
            f"{name:<10} delivered {r['delivered']:>9,} in {r['seconds']:6.1f}s = {r['rate']:>7,.0f} contacts/s   "
            f"CPU us/contact: sync {cpu * per:4.0f}, emulator {r['emulator_cpu'] * per:4.0f}, "
            f"PostgreSQL {r['database_cpu'] * per:4.0f}"
        )
    print(
        f"engine / bare loop: {engine['rate'] / floor['rate']:.2f}x the speed   "
        f"engine / one Iterable project's 5,000 contacts/s: {engine['rate'] / 5000:.2f}x"
    )


if __name__ == "__main__":
    main()
