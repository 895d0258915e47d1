"""The move of Iterable's columns into Integration.config keeps every existing integration working
(integrations/migrations/0008_integration_config.py), and goes back again."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("integrations", "0007_outbox_sent_before")]
AFTER = [("integrations", "0008_integration_config")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_existing_integrations_keep_their_region_project_type_list_and_event():
    apps = _migrate(BEFORE)
    workspace = apps.get_model("workspaces", "Workspace").objects.create(name="Old", slug="old")
    Integration = apps.get_model("integrations", "Integration")
    eu = Integration.objects.create(
        workspace=workspace,
        kind="iterable",
        region="eu",
        project_type="userId",
        list_id=1234,
        list_name="Leads",
        event_name="formSubmitted",
    )
    try:
        apps = _migrate(AFTER)
        moved = apps.get_model("integrations", "Integration").objects.get(pk=eu.pk)
        assert moved.config == {
            "region": "eu",
            "project_type": "userId",
            "list_id": 1234,
            "list_name": "Leads",
            "event_name": "formSubmitted",
        }
        apps = _migrate(BEFORE)  # and back: the columns get their values again
        back = apps.get_model("integrations", "Integration").objects.get(pk=eu.pk)
        assert (back.region, back.project_type, back.list_id, back.list_name, back.event_name) == (
            "eu",
            "userId",
            1234,
            "Leads",
            "formSubmitted",
        )
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
