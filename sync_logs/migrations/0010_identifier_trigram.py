"""The viewer's identifier search finds any part of an identifier (``ada`` finds ``lovelace.ada@…``),
not only a prefix: a trigram index (pg_trgm) on the upper-cased identifier, which serves Django's
``icontains`` (``UPPER(identifier) LIKE UPPER('%ada%')``).

PostgreSQL only, built online partition by partition (partitions.index_create_online); it is not
in SyncRecord.Meta, because SQLite has no GIN index (there the search scans the run's rows, which
a development database holds few of). pg_trgm ships with PostgreSQL (contrib) and is a trusted
extension: the database's owner may create it.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

from sync_logs import partitions

NAME = "record_identifier_trgm"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if partitions.is_partitioned(cursor):
            partitions.index_create_online(cursor, NAME, "USING gin (upper(identifier) gin_trgm_ops)")
        else:  # not reached after 0007 on PostgreSQL; kept so the step never depends on it
            cursor.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NAME} ON {partitions.TABLE} "
                "USING gin (upper(identifier) gin_trgm_ops)"
            )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {NAME}")  # the partitions' go with it


class Migration(migrations.Migration):
    atomic = False  # the partitions' indexes are built concurrently

    dependencies = [
        ("sync_logs", "0009_run_planned"),
    ]

    operations = [
        TrigramExtension(),
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
