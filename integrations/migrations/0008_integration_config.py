"""Everything that belongs to one destination moves into Integration.config (a JSON object that
the destination's package validates): Iterable's region and project type, and the optional list
and event. Existing integrations keep working: their values are copied over, and back again on
a reverse migration."""

from django.db import migrations, models

MOVED = ("region", "project_type", "list_id", "list_name", "event_name")


def forward(apps, schema_editor):
    Integration = apps.get_model("integrations", "Integration")
    for integration in Integration.objects.all().iterator():
        config = {"region": integration.region or "us", "project_type": integration.project_type or "hybrid"}
        if integration.list_id:
            config["list_id"] = integration.list_id
            config["list_name"] = integration.list_name
        if integration.event_name:
            config["event_name"] = integration.event_name
        integration.config = config
        integration.save(update_fields=["config"])


def backward(apps, schema_editor):
    Integration = apps.get_model("integrations", "Integration")
    for integration in Integration.objects.all().iterator():
        config = integration.config or {}
        integration.region = config.get("region", "us")
        integration.project_type = config.get("project_type", "hybrid")
        integration.list_id = config.get("list_id")
        integration.list_name = config.get("list_name", "")
        integration.event_name = config.get("event_name", "")
        integration.save(update_fields=list(MOVED))


class Migration(migrations.Migration):
    dependencies = [("integrations", "0007_outbox_sent_before")]

    operations = [
        migrations.AddField(
            model_name="integration", name="config", field=models.JSONField(blank=True, default=dict)
        ),
        migrations.RunPython(forward, backward),
        *(migrations.RemoveField(model_name="integration", name=name) for name in MOVED),
        migrations.AlterField(model_name="integration", name="kind", field=models.CharField(max_length=20)),
    ]
