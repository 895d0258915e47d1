"""Integrations set up before the setup's state was stored count as past step 3 when they sync on a
schedule or have synced (integrations/migrations/0011_sync_configured_at.py); new ones do not."""

from __future__ import annotations

import pytest

from tests.migrating import migrate_to, migrate_to_latest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("integrations", "0010_outbox_in_flight_index")]
AFTER = [("integrations", "0011_sync_configured_at")]


def test_integrations_that_sync_already_count_as_set_up():
    apps = migrate_to(BEFORE)
    workspace = apps.get_model("workspaces", "Workspace").objects.create(name="Old", slug="old")
    Integration = apps.get_model("integrations", "Integration")
    scheduled = Integration.objects.create(workspace=workspace, kind="iterable", frequency=60)
    synced = Integration.objects.create(workspace=workspace, kind="customerio")
    apps.get_model("sync_logs", "SyncRun").objects.create(integration=synced, trigger="manual", status="succeeded")
    other = apps.get_model("workspaces", "Workspace").objects.create(name="New", slug="new")
    fresh = Integration.objects.create(workspace=other, kind="iterable")
    try:
        apps = migrate_to(AFTER)
        after = {i.pk: i.sync_configured_at for i in apps.get_model("integrations", "Integration").objects.all()}
        assert after[scheduled.pk] is not None and after[synced.pk] is not None
        assert after[fresh.pk] is None
    finally:
        apps = migrate_to(BEFORE)
        apps.get_model("workspaces", "Workspace").objects.filter(slug__in=["old", "new"]).delete()
        migrate_to_latest()
