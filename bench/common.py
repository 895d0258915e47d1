"""What the benchmark scripts share: their database, their settings' secrets, a free port, a process's peak memory."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path

# The benchmarks run with DEBUG off, as a deployment does, so settings want real-looking secrets
# (config/env.py require_deployment_secrets). These are benchmark-only and fixed, so a benchmark
# database kept between runs stays readable.
BENCH_ENV = {
    # The benchmarks create a workspace per run for one user: the daily quota would stop them.
    "WORKSPACES_PER_USER_PER_DAY": "0",
    "SECRET_KEY": "flowsync-bench-only-not-a-secret-0123456789abcdefghijklmn",
    "FLOWSYNC_ENCRYPTION_KEYS": base64.urlsafe_b64encode(b"flowsync-bench-only-not-a-secret").decode(),
}


def ensure_database(url: str) -> None:
    """Create the benchmark's PostgreSQL database if it is missing (kept between runs)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int | str = "self") -> float:
    """The process's CPU time so far (user + system, all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu_seconds() -> float:
    """CPU time so far of PostgreSQL on this machine: its live processes (backends, WAL writer,
    checkpointer) and the backends that have ended (the postmaster's reaped children). What the
    database spends, when the bench is what runs; 0 where its processes cannot be read."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if not stat.with_name("comm").read_text().strip().startswith(("postgres", "postmaster")):
                continue
            fields = stat.read_text().rpartition(")")[2].split()
            ticks = int(fields[11]) + int(fields[12])
            parent = Path(f"/proc/{fields[1]}/comm")
            if not (parent.exists() and parent.read_text().strip().startswith("postgres")):
                ticks += int(fields[13]) + int(fields[14])  # the postmaster: its ended children's time too
            total += ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return total


def peak_rss_mb(pid: int | str = "self") -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def celery_worker(env: dict[str, str], queue: str, *options: str) -> subprocess.Popen:
    """A real Celery worker of the project consuming ``queue`` only (``options``: its pool, concurrency,
    name), quiet, in the project's root: what every bench times its sync with."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, *options,
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**env, "CELERY_QUEUE": queue},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
