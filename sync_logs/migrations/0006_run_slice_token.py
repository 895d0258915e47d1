from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("sync_logs", "0005_lighter_status_index")]

    operations = [
        migrations.AddField(
            model_name="syncrun",
            name="slice_token",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
    ]
