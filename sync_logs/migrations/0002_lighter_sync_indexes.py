"""No single-column indexes on SyncRecord's keys: record_run_status, record_run_identifier and
record_contact start with them, and a sync writes one row per contact.

The state change is declared apart from the SQL so that the foreign keys are not dropped
and re-validated over the whole table.
"""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "sync_logs_syncrecord"
INDEXES = {"contact_id": f"{TABLE}_contact_id_9aa8267e", "run_id": f"{TABLE}_run_id_9d7b3d96"}


class Migration(migrations.Migration):
    dependencies = [
        ("flows", "0001_initial"),
        ("sync_logs", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="syncrecord",
                    name="contact",
                    field=models.ForeignKey(
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="sync_records",
                        to="flows.contact",
                    ),
                ),
                migrations.AlterField(
                    model_name="syncrecord",
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="records",
                        to="sync_logs.syncrun",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"', reverse_sql=f'CREATE INDEX "{name}" ON "{TABLE}" ("{column}")'
                )
                for column, name in INDEXES.items()
            ],
        ),
    ]
