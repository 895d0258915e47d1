"""The log rows' status index leaves out the delivered rows (see SyncRecord.Meta): built first,
concurrently, so the viewer's filters keep an index throughout; then the full one goes."""

from django.db import migrations, models

from lib.migrations import AddIndexOnline, RemoveIndexOnline


class Migration(migrations.Migration):
    atomic = False  # indexes built and dropped concurrently on PostgreSQL

    dependencies = [
        ("flows", "0003_name_validators"),
        ("sync_logs", "0004_alertstate_moves_to_integrations"),
    ]

    operations = [
        AddIndexOnline(
            model_name="syncrecord",
            index=models.Index(
                condition=models.Q(("status", "delivered"), _negated=True),
                fields=["run", "status", "id"],
                name="record_run_undelivered",
            ),
        ),
        RemoveIndexOnline(model_name="syncrecord", name="record_run_status"),
    ]
