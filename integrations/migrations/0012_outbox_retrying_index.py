"""A partial index of the pending rows waiting for a retry (see OutboxItem.Meta), built concurrently."""

from django.db import migrations, models

from lib.migrations import AddIndexOnline


class Migration(migrations.Migration):
    atomic = False  # the index is built concurrently on PostgreSQL

    dependencies = [("integrations", "0011_sync_configured_at")]

    operations = [
        AddIndexOnline(
            model_name="outboxitem",
            index=models.Index(
                condition=models.Q(("attempts__gt", 0), ("status", "pending")),
                fields=["integration", "id"],
                name="outbox_retrying",
            ),
        ),
    ]
