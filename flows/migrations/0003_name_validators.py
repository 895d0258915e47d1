from django.db import migrations, models

import lib.names


class Migration(migrations.Migration):
    dependencies = [
        ("flows", "0002_support_search_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="conversionflow",
            name="name",
            field=models.CharField(max_length=120, validators=[lib.names.validate_name]),
        ),
        migrations.AlterField(
            model_name="flowfield",
            name="label",
            field=models.CharField(max_length=120, validators=[lib.names.validate_name]),
        ),
    ]
