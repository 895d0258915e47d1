"""Prometheus metrics (prometheus-client): what Flowsync counts, and how a process serves them.

Every label is bounded: a destination (the registry's kinds), an endpoint as its client names it
(``POST /api/v1/things``, never a path holding a person), an HTTP status, a trigger, an
outcome, one of Flowsync's stable error codes. No workspace, integration or email is ever a label:
those would grow a series per tenant. Per-tenant questions are the app's pages and the logs.

Processes. Counters and histograms live where the work happens, in web processes (captures) and in
Celery workers (runs, records, requests). With ``PROMETHEUS_MULTIPROC_DIR`` set, every process of a
container writes its values to files there (prometheus-client's multiprocess mode: gunicorn's workers,
Celery's pool children) and one process serves their sum: the web's ``/metrics`` (a bearer token,
metrics.views) and, in a worker container, the worker's own port (``METRICS_PORT``, not published).
Without it (development, tests) each process serves its own.

The gauges that need the database (outbox rows waiting, the sync lag) are not here: a periodic task
computes them (metrics.gauges), so a scrape never counts millions of rows.
"""

from __future__ import annotations

import logging
import os
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

logger = logging.getLogger(__name__)

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Each metric opens its file in it as it is made, below: the directory must be there first.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# Request durations: a destination answers in tens of milliseconds when well, seconds when not.
_REQUEST_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Run durations: a few seconds for a trickle, an hour for a backfill under a slow limit.
_RUN_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0)

CONTACTS_CAPTURED = Counter(
    "flowsync_contacts_captured", "Contacts stored by a form submission or the capture API.", ["source"]
)
SYNC_RUNS = Counter(
    "flowsync_sync_runs", "Sync runs closed, by what started them and how they ended.", ["trigger", "outcome"]
)
SYNC_RUN_DURATION = Histogram(
    "flowsync_sync_run_duration_seconds",
    "From a run's start to its end (runs that started).",
    ["trigger"],
    buckets=_RUN_BUCKETS,
)
SYNC_RUNS_REAPED = Counter(
    "flowsync_sync_runs_reaped", "Runs whose worker stopped beating and that the reaper closed as abandoned."
)
SYNC_RECORDS = Counter(
    "flowsync_sync_records",
    "Sync-log rows written: one per contact per run, by outcome and Flowsync's error code.",
    ["destination", "outcome", "error_code"],
)
DESTINATION_REQUESTS = Counter(
    "flowsync_destination_requests",
    "Tries of requests to a destination, by endpoint and HTTP status ('none': no answer).",
    ["destination", "endpoint", "status"],
)
DESTINATION_REQUEST_DURATION = Histogram(
    "flowsync_destination_request_duration_seconds",
    "From sending a request to its answer.",
    ["destination", "endpoint"],
    buckets=_REQUEST_BUCKETS,
)
DESTINATION_RATE_LIMITED = Counter(
    "flowsync_destination_rate_limited", "Answers of 429 (too many requests) from a destination.", ["destination"]
)
DESTINATION_BUDGET_WAITS = Counter(
    "flowsync_destination_budget_waits",
    "Requests that waited for their account's rate budget before they were sent.",
    ["destination"],
)
DESTINATION_BUDGET_WAIT = Counter(
    "flowsync_destination_budget_wait_seconds",
    "Time requests spent waiting for their account's rate budget.",
    ["destination"],
)
DESTINATION_RETRY_WAIT = Counter(
    "flowsync_destination_retry_wait_seconds",
    "Time spent waiting before sending a request again (after a 429, a 5xx, a connection error).",
    ["destination"],
)

BUDGET_HANDBACKS = Counter(
    "flowsync_sync_budget_handbacks",
    "Slices that gave their worker slot back to wait for their account's rate budget instead of sleeping in it.",
    ["destination"],
)
BUDGET_HANDBACK_WAIT = Counter(
    "flowsync_sync_budget_handback_wait_seconds",
    "The waits those slices handed back: the time their runs waited for the budget outside a worker.",
    ["destination"],
)


def exchange_observe(exchange) -> None:
    """Count one try of one request (destinations.http.Exchange): registered as an observer of every client."""
    where, endpoint = exchange.destination, f"{exchange.method} {exchange.endpoint}"
    status = str(exchange.status) if exchange.status is not None else "none"
    DESTINATION_REQUESTS.labels(where, endpoint, status).inc()
    DESTINATION_REQUEST_DURATION.labels(where, endpoint).observe(exchange.seconds)
    if exchange.status == 429:
        DESTINATION_RATE_LIMITED.labels(where).inc()
    # A wait under a millisecond is the bucket's round trip, not a wait.
    if exchange.budget_wait >= 0.001:
        DESTINATION_BUDGET_WAITS.labels(where).inc()
        DESTINATION_BUDGET_WAIT.labels(where).inc(exchange.budget_wait)
    if exchange.retry_wait > 0:
        DESTINATION_RETRY_WAIT.labels(where).inc(exchange.retry_wait)


def budget_handed_back(destination: str, seconds: float) -> None:
    BUDGET_HANDBACKS.labels(destination).inc()
    BUDGET_HANDBACK_WAIT.labels(destination).inc(max(0.0, seconds))


def contacts_captured(source: str, count: int = 1) -> None:
    CONTACTS_CAPTURED.labels(source).inc(count)


def run_closed(*, trigger: str, outcome: str, seconds: float | None) -> None:
    SYNC_RUNS.labels(trigger, outcome).inc()
    if seconds is not None:
        SYNC_RUN_DURATION.labels(trigger).observe(seconds)


def run_reaped(*, trigger: str) -> None:
    run_closed(trigger=trigger, outcome="abandoned", seconds=None)
    SYNC_RUNS_REAPED.inc()


def records_written(destination: str, outcomes: Iterable[tuple[str, str]]) -> None:
    """Count log rows by (outcome, error code): one increment per distinct pair, not per row."""
    for (outcome, code), count in Tally(outcomes).items():
        SYNC_RECORDS.labels(destination, outcome, code or "none").inc(count)


# --- serving ---------------------------------------------------------------------------------


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def process_registry() -> CollectorRegistry:
    """What this process serves of the counters: every process's sum in multiprocess mode, else its own."""
    if not multiprocess_dir():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def exposition(*extra: CollectorRegistry) -> bytes:
    """The text format of the counters and of ``extra`` registries (the database gauges): families are
    distinct, so their texts concatenate."""
    return b"".join(generate_latest(registry) for registry in (process_registry(), *extra))


def multiprocess_start() -> None:
    """A fresh start of a container's first process (gunicorn's master, a worker's main process): the files of
    the processes before it would otherwise be summed with this one's for ever. Its children, forked after,
    open files of their own (prometheus-client keys them by pid)."""
    path = multiprocess_dir()
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def multiprocess_child_exit(pid: int) -> None:
    """A child process ended (a gunicorn worker, a pool child): its live gauges go; its counts stay."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


def worker_serve(port: int, addr: str) -> None:
    """Serve the worker container's counters on ``port`` (a thread of the worker's main process)."""
    start_http_server(port, addr=addr, registry=process_registry())
    logger.info("Metrics served on %s:%s/metrics", addr, port)
