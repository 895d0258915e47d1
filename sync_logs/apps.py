from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_log_partitions(sender, using="default", **kwargs) -> None:
    # Every migrate (each deploy's) makes the coming days' log partitions, should the beat not have
    # run for a while; idempotent, and nothing on SQLite or before migration 0006.
    from sync_logs.ledger import log_partitions_ensure

    log_partitions_ensure()


class SyncLogsConfig(AppConfig):
    name = "sync_logs"

    def ready(self) -> None:
        post_migrate.connect(_ensure_log_partitions, sender=self, dispatch_uid="sync_logs_partitions_ensure")
