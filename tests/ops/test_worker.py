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
