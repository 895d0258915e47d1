"""Fewer index writes per outbox update (the sync engine updates every row twice).

The integration key loses its own index (outbox_unique_contact starts with it), and
the claim index holds pending rows only (outbox_pending, built before outbox_claim is
dropped, so claims always have one). The state change is declared apart from the SQL
so that the foreign key is not dropped and re-validated over the whole table. Indexes
are built and dropped concurrently on PostgreSQL: capture keeps writing meanwhile.
"""

import django.db.models.deletion
from django.db import migrations, models

from lib.migrations import AddIndexOnline, RemoveIndexOnline

FK_INDEX = "integrations_outboxitem_integration_id_1313c08d"


class Migration(migrations.Migration):
    atomic = False
    dependencies = [
        ("flows", "0001_initial"),
        ("integrations", "0004_integration_event_name_integration_list_id_and_more"),
        ("sync_logs", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="outboxitem",
                    name="integration",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="outbox",
                        to="integrations.integration",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{FK_INDEX}"',  # a drop is instant: no need for CONCURRENTLY
                    reverse_sql=f'CREATE INDEX "{FK_INDEX}" ON "integrations_outboxitem" ("integration_id")',
                ),
            ],
        ),
        AddIndexOnline(
            model_name="outboxitem",
            index=models.Index(
                condition=models.Q(("status", "pending")), fields=["integration", "id"], name="outbox_pending"
            ),
        ),
        RemoveIndexOnline(model_name="outboxitem", name="outbox_claim"),
    ]
