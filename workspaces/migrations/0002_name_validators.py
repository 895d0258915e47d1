from django.db import migrations, models

import lib.names


class Migration(migrations.Migration):
    dependencies = [
        ("workspaces", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="workspace",
            name="name",
            field=models.CharField(max_length=100, validators=[lib.names.validate_name]),
        ),
    ]
