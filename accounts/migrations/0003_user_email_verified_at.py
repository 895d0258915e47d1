from django.db import migrations, models
from django.db.models import F


def existing_users_are_verified(apps, schema_editor):
    # Accounts made before verification existed keep working: they count as verified since they joined.
    apps.get_model("accounts", "User").objects.filter(email_verified_at=None).update(email_verified_at=F("date_joined"))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="email_verified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(existing_users_are_verified, migrations.RunPython.noop),
    ]
