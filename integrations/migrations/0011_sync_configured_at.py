from django.db import migrations, models
from django.db.models import Exists, OuterRef, Q


def mark_configured(apps, schema_editor):
    # Integrations set up before this field: one that syncs on a schedule, or has synced, is past step 3.
    Integration = apps.get_model("integrations", "Integration")
    SyncRun = apps.get_model("sync_logs", "SyncRun")
    ran = SyncRun.objects.filter(integration=OuterRef("pk"))
    Integration.objects.filter(Q(frequency__gt=0) | Exists(ran)).update(sync_configured_at=models.F("updated_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0010_outbox_in_flight_index"),
        ("sync_logs", "0004_alertstate_moves_to_integrations"),  # SyncRun with its integration: all the data step reads
    ]

    operations = [
        migrations.AddField(
            model_name="integration",
            name="sync_configured_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(mark_configured, migrations.RunPython.noop),
    ]
