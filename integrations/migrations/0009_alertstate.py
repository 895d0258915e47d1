"""AlertState, moved here from sync_logs (sync_logs' 0004 dropped it from that app's state).

The model is taken over as it is, table and rows included (state only). The table keeps its name
(the model's Meta.db_table): renaming it would break the release still running while a deploy
migrates (every workspace page reads the alert banner), and the name is only a name. Its content
type moves with it, so permissions and admin history that point at it keep pointing at it.
Backwards, sync_logs takes the model back."""

import django.db.models.deletion
from django.db import migrations, models

OLD_TABLE = "sync_logs_alertstate"


def _move_content_type(apps, *, source: str, target: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    # A content type already created under the target (a database migrated back and forth) is kept
    # as it is: the old one then stays where it is rather than clash with it.
    if not ContentType.objects.filter(app_label=target, model="alertstate").exists():
        ContentType.objects.filter(app_label=source, model="alertstate").update(app_label=target)


def content_type_forward(apps, schema_editor):
    _move_content_type(apps, source="sync_logs", target="integrations")


def content_type_backward(apps, schema_editor):
    _move_content_type(apps, source="integrations", target="sync_logs")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("integrations", "0008_integration_config"),
        ("sync_logs", "0004_alertstate_moves_to_integrations"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AlertState",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        (
                            "failure_rate_threshold",
                            models.PositiveSmallIntegerField(
                                default=20,
                                help_text="Alert when more than this percentage of a run's records fail (0 turns it off).",
                            ),
                        ),
                        ("last_sent_at", models.DateTimeField(blank=True, null=True)),
                        ("message", models.TextField(blank=True)),
                        ("raised_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "integration",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="alert_state",
                                to="integrations.integration",
                            ),
                        ),
                    ],
                    options={"db_table": OLD_TABLE},
                ),
            ],
        ),
        migrations.RunPython(content_type_forward, content_type_backward),
    ]
