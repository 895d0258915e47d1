"""What a sync shows to whoever runs Flowsync: the Prometheus counters (lib.metrics) and the structured log
lines (lib.logcontext), from a real run against the emulators and, for the worker's own port and its task
events, from a real Celery worker."""

from __future__ import annotations

import io
import json
import logging
import re
import urllib.request

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from integrations import engine
from integrations.destinations import DESTINATIONS
from integrations.sync import sync_now
from lib.logcontext import JsonLineFormatter, LogContextFilter
from lib.logredact import RedactSecretsFilter
from sync_logs.models import SyncRun
from tests.conftest import free_port, wait_for

PUSH = "/api/users/bulkUpdate"

# Every label a metric may carry, and the values a bounded label may take: no workspace, integration,
# person or free text is ever one (a series per tenant would grow without end).
LABELS = {"source", "trigger", "outcome", "destination", "endpoint", "status", "error_code", "state", "le"}


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _run(integration) -> SyncRun:
    return engine.sync_run_execute(sync_now(integration=integration).pk)


def _assert_bounded(text: str, strict: set[str] | None = None) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("flowsync_"):
            continue
        names.add(family.name)
        for sample in family.samples:
            assert set(sample.labels) <= LABELS, sample
            if "destination" in sample.labels:
                # A kind of the registry (in this process, tests' in-process fakes count too: a slug).
                value = sample.labels["destination"]
                assert value in strict if strict else re.fullmatch(r"[a-z][a-z0-9_]{0,19}", value), sample
            if "endpoint" in sample.labels:
                method, path = sample.labels["endpoint"].split(" ", 1)
                assert method in {"GET", "POST", "PUT", "PATCH", "DELETE"} and path.startswith("/"), sample
                assert "@" not in path and "example" not in path, sample
    return names


@pytest.mark.django_db
def test_a_run_is_counted_by_outcome_with_its_records_and_requests(integration, capture, iterable, client, settings):
    settings.METRICS_TOKEN = "scrape-token-123456"
    before = {
        "runs": _value("flowsync_sync_runs_total", trigger="manual", outcome="succeeded"),
        "delivered": _value(
            "flowsync_sync_records_total", destination="iterable", outcome="delivered", error_code="none"
        ),
        "captured": _value("flowsync_contacts_captured_total", source="api"),
        "bulk": _value(
            "flowsync_destination_requests_total",
            destination="iterable",
            endpoint="POST /api/users/bulkUpdate",
            status="200",
        ),
    }
    capture(3, age=30)
    run = _run(integration)
    assert run.status == "succeeded"
    assert _value("flowsync_contacts_captured_total", source="api") - before["captured"] == 3
    assert _value("flowsync_sync_runs_total", trigger="manual", outcome="succeeded") == before["runs"] + 1
    assert (
        _value("flowsync_sync_records_total", destination="iterable", outcome="delivered", error_code="none")
        - before["delivered"]
        == run.delivered
    )
    assert (
        _value(
            "flowsync_destination_requests_total",
            destination="iterable",
            endpoint="POST /api/users/bulkUpdate",
            status="200",
        )
        > before["bulk"]
    )
    assert _value("flowsync_sync_run_duration_seconds_count", trigger="manual") >= 1

    scraped = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123456")
    assert scraped.status_code == 200
    names = _assert_bounded(scraped.content.decode())
    assert {
        "flowsync_contacts_captured",
        "flowsync_sync_runs",
        "flowsync_sync_run_duration_seconds",
        "flowsync_sync_records",
        "flowsync_destination_requests",
        "flowsync_destination_request_duration_seconds",
        "flowsync_outbox_rows",
        "flowsync_sync_lag_seconds",
        "flowsync_sync_runs_active",
        "flowsync_integrations",
    } <= names


@pytest.mark.django_db
def test_429s_and_budget_waits_are_counted(integration, capture, iterable):
    rate_limited = _value("flowsync_destination_rate_limited_total", destination="iterable")
    retry_wait = _value("flowsync_destination_retry_wait_seconds_total", destination="iterable")
    iterable.fault(
        "/api/users/bulkUpdate", status=429, headers={"Retry-After": "0.2"}, body={"code": "RateLimitExceeded"}
    )
    capture(2)
    run = _run(integration)
    assert run.delivered == 2
    assert _value("flowsync_destination_rate_limited_total", destination="iterable") == rate_limited + 1
    assert _value("flowsync_destination_retry_wait_seconds_total", destination="iterable") >= retry_wait + 0.2
    assert (
        _value(
            "flowsync_destination_requests_total",
            destination="iterable",
            endpoint="POST /api/users/bulkUpdate",
            status="429",
        )
        >= 1
    )


@pytest.mark.django_db
def test_customerio_requests_are_counted_under_their_own_destination(customerio_integration, capture, customerio):
    before = _value(
        "flowsync_destination_requests_total", destination="customerio", endpoint="POST /api/v2/batch", status="200"
    )
    capture(2)
    run = _run(customerio_integration)
    assert run.delivered == 2
    assert (
        _value(
            "flowsync_destination_requests_total", destination="customerio", endpoint="POST /api/v2/batch", status="200"
        )
        > before
    )


@pytest.mark.django_db
def test_every_line_of_a_run_names_the_run_integration_and_workspace_as_json(integration, capture):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(RedactSecretsFilter())
    handler.addFilter(LogContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        capture(3)
        run = _run(integration)
    finally:
        root.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is one JSON object
    mine = [line for line in lines if line.get("run_id") == run.pk]
    assert mine and all(
        line["integration_id"] == integration.pk
        and line["workspace_id"] == integration.workspace_id
        and line["destination"] == "iterable"
        for line in mine
    )
    batch = next(line for line in mine if "batch" in line)
    assert (batch["batch"], batch["delivered"], batch["failed"]) == (3, 3, 0)
    assert batch["write_ms"] >= 0
    finished = next(line for line in mine if line.get("outcome"))
    assert (finished["outcome"], finished["delivered"], finished["trigger"]) == ("succeeded", 3, "manual")
    assert finished["seconds"] >= 0 and {"time", "level", "logger", "message"} <= set(finished)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_serves_its_pools_counters_and_logs_its_tasks_as_json(
    integration, capture, iterable, start_worker, settings, tmp_path
):
    """Two pool processes count into one multiprocess directory; the worker's main process serves their sum
    on METRICS_PORT. Under LOG_FORMAT=json the worker's lines are JSON, its task events with the task's fields."""
    port = free_port()
    worker = start_worker(
        concurrency=2,
        extra_env={
            "ITERABLE_US_BASE_URL": f"{iterable.server.url}/us",
            "ITERABLE_EU_BASE_URL": f"{iterable.server.url}/eu",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            "METRICS_PORT": str(port),
            "METRICS_ADDR": "127.0.0.1",
            "LOG_FORMAT": "json",
        },
    )
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    capture(5)
    run = sync_now(integration=integration)
    wait_for(lambda: SyncRun.objects.get(pk=run.pk).status == "succeeded", timeout=60, message="the run to succeed")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return answer.read().decode()

    text = wait_for(lambda: "flowsync_sync_runs_total" in (t := scrape()) and t, timeout=30, message="the counters")
    _assert_bounded(text, strict=set(DESTINATIONS))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("flowsync_sync_runs_total", (("outcome", "succeeded"), ("trigger", "manual")))] == 1
    assert (
        samples[
            (
                "flowsync_sync_records_total",
                (("destination", "iterable"), ("error_code", "none"), ("outcome", "delivered")),
            )
        ]
        == 5
    )

    def task_line():
        for raw in worker.log().splitlines():
            if raw.startswith("{"):
                line = json.loads(raw)
                if line.get("logger") == "flowsync.tasks" and line.get("run_id") == run.pk and "seconds" in line:
                    return line
        return None

    ended = wait_for(task_line, timeout=30, message="the task's JSON line")
    assert ended["task"].endswith("_task") and ended["task_id"] and ended["seconds"] >= 0
    assert (ended["integration_id"], ended["workspace_id"]) == (integration.pk, integration.workspace_id)
    started = [json.loads(r) for r in worker.log().splitlines() if r.startswith("{") and "started" in r]
    assert any(line["task_id"] == ended["task_id"] for line in started)
    run_lines = [json.loads(r) for r in worker.log().splitlines() if r.startswith("{") and f'"run_id": {run.pk}' in r]
    assert any(line.get("outcome") == "succeeded" and line.get("workspace_id") for line in run_lines)


def test_a_json_line_masks_secrets_in_its_traceback_and_its_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(RedactSecretsFilter())
    handler.addFilter(LogContextFilter())
    log = logging.getLogger("tests.observability.secrets")
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError("refused: Authorization: Bearer abcdefghijklmnop1234 api_key=SECRETSECRET9876")
        except RuntimeError:
            log.exception("call failed", extra={"detail": "Api-Key: zyxwvutsrqponm5555"})
    finally:
        log.removeHandler(handler)
    line = json.loads(stream.getvalue())
    text = json.dumps(line)
    assert "abcdefghijklmnop" not in text and "SECRETSECRET" not in text and "zyxwvutsrqponm" not in text
    assert "…1234" in line["exc_info"] and "…9876" in line["exc_info"] and line["detail"].endswith("…5555")


@pytest.mark.django_db
def test_a_request_without_an_answer_is_counted_as_none(integration, capture, iterable, settings):
    """A dropped connection (no status at all) is a try of its own under status "none"; the retry after it is
    counted as the 200 it got."""
    settings.DESTINATION_MAX_RETRIES = 1
    none = _value("flowsync_destination_requests_total", destination="iterable", endpoint=f"POST {PUSH}", status="none")
    iterable.fault(PUSH, kind="drop")
    capture(1)
    run = _run(integration)
    assert run.delivered == 1
    assert (
        _value("flowsync_destination_requests_total", destination="iterable", endpoint=f"POST {PUSH}", status="none")
        == none + 1
    )


@pytest.mark.django_db
def test_a_reaped_run_is_counted(integration):
    from datetime import timedelta

    from sync_logs import ledger

    reaped = _value("flowsync_sync_runs_reaped_total")
    abandoned = _value("flowsync_sync_runs_total", trigger="manual", outcome="abandoned")
    run = ledger.run_create(integration=integration, trigger=SyncRun.Trigger.MANUAL)
    ledger.run_start(run.pk)
    assert ledger.sync_runs_reap(timeout=timedelta(seconds=-1)) == 1
    assert _value("flowsync_sync_runs_reaped_total") == reaped + 1
    assert _value("flowsync_sync_runs_total", trigger="manual", outcome="abandoned") == abandoned + 1
