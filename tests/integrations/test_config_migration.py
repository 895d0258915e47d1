"""The move of Iterable's columns into Integration.config keeps every existing integration working
(integrations/migrations/0008_integration_config.py), and goes back again."""

from __future__ import annotations

import pytest

from tests.migrating import migrate_to, migrate_to_latest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("integrations", "0007_outbox_sent_before")]
AFTER = [("integrations", "0008_integration_config")]


def test_existing_integrations_keep_their_region_project_type_list_and_event():
    apps = migrate_to(BEFORE)
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
        apps = migrate_to(AFTER)
        moved = apps.get_model("integrations", "Integration").objects.get(pk=eu.pk)
        assert moved.config == {
            "region": "eu",
            "project_type": "userId",
            "list_id": 1234,
            "list_name": "Leads",
            "event_name": "formSubmitted",
        }
        apps = migrate_to(BEFORE)  # and back: the columns get their values again
        back = apps.get_model("integrations", "Integration").objects.get(pk=eu.pk)
        assert (back.region, back.project_type, back.list_id, back.list_name, back.event_name) == (
            "eu",
            "userId",
            1234,
            "Leads",
            "formSubmitted",
        )
    finally:
        migrate_to_latest()
