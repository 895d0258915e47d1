"""The outbox's run index becomes partial, on the rows in flight (see OutboxItem.Meta): built first,
concurrently, so that no query is left without an index; then the full one goes."""

import django.db.models.deletion
from django.db import migrations, models

from lib.migrations import AddIndexOnline


class Migration(migrations.Migration):
    atomic = False  # the index is built concurrently on PostgreSQL

    dependencies = [
        ("flows", "0003_name_validators"),
        ("integrations", "0009_alertstate"),
        ("sync_logs", "0004_alertstate_moves_to_integrations"),
    ]

    operations = [
        AddIndexOnline(
            model_name="outboxitem",
            index=models.Index(condition=models.Q(("status", "in_flight")), fields=["run"], name="outbox_in_flight"),
        ),
        migrations.AlterField(
            model_name="outboxitem",
            name="run",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="sync_logs.syncrun",
            ),
        ),
    ]
