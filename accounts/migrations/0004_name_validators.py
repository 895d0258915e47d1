from django.db import migrations, models

import lib.names


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_user_email_verified_at"),
    ]

    operations = [
        migrations.AlterField(
            model_name="user",
            name="name",
            field=models.CharField(blank=True, max_length=150, validators=[lib.names.validate_name]),
        ),
    ]
