from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from health.models import Heartbeat

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_and_worker(client):
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "worker": "unknown"}
    Heartbeat.objects.create(name="worker", beat_at=timezone.now())
    assert client.get("/healthz").json()["worker"] == "ok"
    Heartbeat.objects.update(beat_at=timezone.now() - timedelta(minutes=10))
    assert client.get("/healthz").json()["worker"] == "stale"


@pytest.mark.django_db(transaction=True)
def test_a_database_failure_is_503_and_its_text_goes_to_the_log_only(client, caplog):
    """The database is down (its port closed): the error names host and port, which a public page must not."""
    from django.db import connection

    from bench.common import free_port

    saved = dict(connection.settings_dict)
    connection.close()
    if "sqlite" in saved["ENGINE"]:
        connection.settings_dict["NAME"] = "/nonexistent/flowsync/db.sqlite3"
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))  # nothing listens there
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "error"}
    logged = [r for r in caplog.records if r.name == "health.views"]
    assert logged and logged[0].exc_info is not None  # the real cause, for whoever runs the service
