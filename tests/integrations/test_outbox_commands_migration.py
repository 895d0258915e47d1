"""integrations' 0013 lets outbox rows carry a command instead of a contact: in place on PostgreSQL (the foreign
key is not dropped and re-checked), and back again without the command rows."""

from __future__ import annotations

import pytest
from django.db import connection

from integrations.models import Integration, OutboxItem
from tests.migrating import migrate_to, migrate_to_latest
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("integrations", "0012_outbox_retrying_index")]


def _nullable() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT is_nullable FROM information_schema.columns WHERE table_name = %s AND column_name = 'contact_id'",
            [OutboxItem._meta.db_table],
        )
        return cursor.fetchone()[0] == "YES"


def _foreign_key_oid() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT oid FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'f' AND conname LIKE %s",
            [OutboxItem._meta.db_table, "%contact_id%"],
        )
        return cursor.fetchone()[0]


def test_command_rows_come_and_go_with_the_migration():
    workspace = Workspace.objects.create(name="W", slug="w")
    integration = Integration.objects.create(workspace=workspace, kind="iterable", status="connected")
    OutboxItem.objects.create(integration=integration, command={"op": "device_disable", "token": "t"})
    key = _foreign_key_oid()
    try:
        migrate_to(BEFORE)
        assert not _nullable() and not OutboxItem.objects.filter(contact=None).exists()
        migrate_to_latest()
        assert _nullable()
        assert _foreign_key_oid() == key  # the same constraint: never dropped, never re-checked
    finally:
        migrate_to_latest()
