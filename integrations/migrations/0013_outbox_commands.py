"""Outbox rows may carry a command instead of a contact (``command``; ``contact`` nullable).

On PostgreSQL only the NOT NULL goes (a catalog change): Django's AlterField would drop the foreign
key and add it again, which re-checks every row of the outbox under a lock that stops writes.
Backwards, the command rows go first (they have no contact), then NOT NULL comes back.
"""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "integrations_outboxitem"


class ContactNullable(migrations.AlterField):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN "contact_id" DROP NOT NULL')
            return
        super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        schema_editor.execute(f'DELETE FROM "{TABLE}" WHERE "contact_id" IS NULL')
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN "contact_id" SET NOT NULL')
            return
        super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [
        ("flows", "0004_contact_device"),
        ("integrations", "0012_outbox_retrying_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxitem",
            name="command",
            field=models.JSONField(blank=True, null=True),
        ),
        ContactNullable(
            model_name="outboxitem",
            name="contact",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="outbox",
                to="flows.contact",
            ),
        ),
    ]
