"""A real Celery worker (and beat) against the configured broker."""

from __future__ import annotations

import pytest

from health.models import Heartbeat
from health.tasks import heartbeat_task
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_beat_schedules_the_heartbeat_and_a_worker_runs_it(start_worker):
    worker = start_worker(beat=True, extra_env={"HEARTBEAT_SECONDS": "2"})
    beat = wait_for(lambda: Heartbeat.objects.filter(name="worker").first(), timeout=60, message="the beat heartbeat")
    assert beat.hostname
    assert "health.tasks.heartbeat_task" in worker.log()


def test_a_task_sent_from_the_app_runs_on_the_worker(start_worker):
    worker = start_worker()
    heartbeat_task.apply_async(args=["sent-by-test"], queue=worker.queue)
    wait_for(lambda: Heartbeat.objects.filter(name="sent-by-test").exists(), timeout=60, message="the task")


def test_the_worker_log_masks_secrets(start_worker):
    """Celery replaces the root logger's handlers in a worker; the redaction filter must survive that."""
    worker = start_worker()
    key, token = "srvWorkerKey1234us01", "tokWorkerToken5678"
    # The worker logs a task's return value, and heartbeat_task returns its name: a log line with secrets in it.
    heartbeat_task.apply_async(args=[f"Api-Key: {key} Bearer {token}"], queue=worker.queue)
    wait_for(lambda: "succeeded" in worker.log(), timeout=60, message="the task's log line")
    log = worker.log()
    assert key not in log and token not in log
    assert f"Api-Key: …{key[-4:]} Bearer …{token[-4:]}" in log
