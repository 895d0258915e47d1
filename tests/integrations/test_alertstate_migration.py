"""The move of AlertState from sync_logs to integrations (sync_logs' 0004, integrations' 0009) keeps
every alert (its threshold, its open message, when the last email went) and goes back again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.migrating import migrate_to, migrate_to_latest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("sync_logs", "0003_destination_code"), ("integrations", "0008_integration_config")]
AFTER = [("integrations", "0009_alertstate")]


def _tables() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def _values(state) -> tuple:
    return (state.integration_id, state.failure_rate_threshold, state.message, state.raised_at, state.last_sent_at)


def _content_type(apps, app_label: str):
    return apps.get_model("contenttypes", "ContentType").objects.filter(app_label=app_label, model="alertstate").first()


def test_an_alert_raised_before_the_move_is_there_after_it_and_back():
    apps = migrate_to(BEFORE)
    assert "sync_logs_alertstate" in _tables() and "integrations_alertstate" not in _tables()
    workspace = apps.get_model("workspaces", "Workspace").objects.create(name="Old", slug="old")
    Integration = apps.get_model("integrations", "Integration")
    integration = Integration.objects.create(workspace=workspace, kind="iterable")
    other = Integration.objects.create(workspace=workspace, kind="customerio")
    raised = timezone.now() - timedelta(minutes=5)
    old = apps.get_model("sync_logs", "AlertState").objects.create(
        integration=integration,
        failure_rate_threshold=35,
        message="Sync run #7 failed: the key was revoked.",
        raised_at=raised,
        last_sent_at=raised,
    )
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(model="alertstate").delete()  # as a database from before the move has it:
    content_type = ContentType.objects.create(app_label="sync_logs", model="alertstate")
    try:
        apps = migrate_to(AFTER)
        # The table keeps its name: the release still running during a deploy's migrate reads it.
        assert "sync_logs_alertstate" in _tables() and "integrations_alertstate" not in _tables()
        AlertState = apps.get_model("integrations", "AlertState")
        moved = AlertState.objects.get(pk=old.pk)
        assert _values(moved) == _values(old)
        assert apps.get_model("integrations", "Integration").objects.get(pk=integration.pk).alert_state.pk == old.pk
        # The same table and id sequence: a new alert gets a fresh id.
        assert AlertState.objects.create(integration_id=other.pk).pk > old.pk
        assert _content_type(apps, "integrations").pk == content_type.pk  # permissions, admin history follow it
        assert _content_type(apps, "sync_logs") is None

        apps = migrate_to(BEFORE)  # and back: sync_logs has the model and its table again
        assert "sync_logs_alertstate" in _tables()
        back = apps.get_model("sync_logs", "AlertState").objects.get(pk=old.pk)
        assert _values(back) == _values(old)
        assert _content_type(apps, "sync_logs").pk == content_type.pk
    finally:
        migrate_to_latest()
