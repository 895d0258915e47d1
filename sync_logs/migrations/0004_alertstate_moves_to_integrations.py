"""AlertState moves to the integrations app (an integration's health, not a log table).

State only: the table and its rows stay where they are; integrations' 0009 takes the model over
(and renames the table). Nothing points at the model from here, so dropping it from this app's
state touches no other model."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("sync_logs", "0003_destination_code"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="AlertState")]),
    ]
