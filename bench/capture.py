"""Capture API benchmark: concurrent clients against gunicorn on PostgreSQL.

    .venv/bin/python bench/capture.py [--seconds 20] [--clients 16] [--batch 1]

Creates (or reuses) the database named by BENCH_DATABASE_URL, migrates it, makes a
workspace with a flow and a capture token, starts gunicorn on a free loopback
port, then drives ``POST /api/v1/contacts`` from several client processes over
keep-alive connections. Prints submissions/s and p50/p95/p99 latency. Issue
target on the 2-core machine: >= 500/s, p99 < 100 ms.

The rate limits stay on, as in production, with limits too high to refuse
anything, so their counter round-trips are measured; with REDIS_URL set the
counters live in Redis, as in production (else in each worker's memory).
``--no-limits`` turns them off, to see what they cost.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import BENCH_ENV, ensure_database, free_port  # noqa: E402 - after the path is set

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/flowsync_bench"


def _prepare(env: dict[str, str]) -> tuple[str, str]:
    """Migrate and create a workspace, flow and token. Returns (token, flow public id)."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )
    code = """
import json
from accounts.models import User
from flows.services import capture_token_rotate, flow_create, flow_field_add
from workspaces.services import workspace_create
user, _ = User.objects.get_or_create(email="bench@example.com")
ws = workspace_create(name="Bench", owner=user)
flow = flow_create(workspace=ws, name="Bench flow", actor=user)
for key in ("first_name", "last_name", "company"):
    flow_field_add(flow=flow, kind="standard", key=key, actor=user)
flow_field_add(flow=flow, kind="custom", key="score", label="Score", field_type="number", actor=user)
print(json.dumps([capture_token_rotate(workspace=ws, actor=user), flow.public_id]))
"""
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token, public_id = json.loads(out.stdout.strip().splitlines()[-1])
    return token, public_id


def _body(public_id: str, stem: str, batch: int) -> bytes:
    items = [
        {
            "flow": public_id,
            "fields": {
                "email": f"{stem}-{i}@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "company": "Acme",
                "score": i,
            },
        }
        for i in range(batch)
    ]
    return json.dumps(items[0] if batch == 1 else {"contacts": items}).encode()


def _client(port: int, token: str, public_id: str, batch: int, stop_at: float, threads: int, out: mp.Queue) -> None:
    import threading

    results: list[tuple[float, int]] = []
    lock = threading.Lock()

    def loop(worker: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        mine: list[tuple[float, int]] = []
        # Bodies are built before the clock starts: the clients share the 2 cores with
        # the server, so the less work they do per request the truer the figure.
        prefix = f"u{os.getpid()}-{worker}-{uuid.uuid4().hex[:6]}"
        bodies = [_body(public_id, f"{prefix}-{n}", batch) for n in range(2000)]
        n = 0
        while time.monotonic() < stop_at:
            body = bodies[n % len(bodies)]
            n += 1
            started = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/contacts", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            mine.append((time.perf_counter() - started, status))
        with lock:
            results.extend(mine)

    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections in all")
    parser.add_argument("--processes", type=int, default=2, help="client processes (the clients are split)")
    parser.add_argument("--batch", type=int, default=1, help="contacts per request (1 = single-contact API)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class")
    parser.add_argument("--no-limits", action="store_true", help="turn the capture rate limits off")
    args = parser.parse_args()

    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    ensure_database(db_url)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": db_url,
        "DEBUG": "0",
        **BENCH_ENV,
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        # 0 turns a limit off; a limit no benchmark reaches keeps the counting.
        "RATELIMIT_API_PER_IP": "0" if args.no_limits else "1000000000",
        "RATELIMIT_API_PER_FLOW": "0" if args.no_limits else "1000000000",
    }
    print(
        f"rate limits {'off' if args.no_limits else 'on'}; counters in "
        f"{'Redis' if os.environ.get('REDIS_URL') else 'process memory (set REDIS_URL for Redis)'}"
    )
    token, public_id = _prepare(env)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            args.worker_class,
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        # Warm every worker's connections and caches before measuring.
        _run(port, token, public_id, args, seconds=2)
        results, elapsed = _run(port, token, public_id, args, seconds=args.seconds)
    finally:
        server.terminate()
        server.wait(30)

    latencies = sorted(r[0] for r in results)
    ok = sum(1 for _, status in results if status in (200, 201))
    errors = len(results) - ok
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    contacts = ok * args.batch
    print(
        f"run           {uuid.uuid4().hex[:6]}: {args.clients} clients, batch {args.batch}, "
        f"gunicorn {args.workers}x{args.threads} {args.worker_class}, {elapsed:.1f}s, PostgreSQL"
    )
    print(f"requests      {len(results)} ({errors} errors)")
    print(f"requests/s    {len(results) / elapsed:.0f}")
    print(f"submissions/s {contacts / elapsed:.0f}   (contacts stored per second)")
    print(
        f"latency ms    p50 {q[49] * 1000:.1f}   p95 {q[94] * 1000:.1f}   p99 {q[98] * 1000:.1f}   "
        f"max {latencies[-1] * 1000:.1f}"
    )
    if errors:
        sys.exit(1)


def _run(port: int, token: str, public_id: str, args: argparse.Namespace, *, seconds: float):
    out: mp.Queue = mp.Queue()
    stop_at = time.monotonic() + seconds
    per_process = max(args.clients // args.processes, 1)
    procs = [
        mp.Process(target=_client, args=(port, token, public_id, args.batch, stop_at, per_process, out))
        for _ in range(args.processes)
    ]
    started = time.monotonic()
    for proc in procs:
        proc.start()
    results = []
    for _ in procs:
        results.extend(out.get())
    for proc in procs:
        proc.join()
    return results, time.monotonic() - started


if __name__ == "__main__":
    main()
