from django.apps import AppConfig


class SyncLogsConfig(AppConfig):
    name = "sync_logs"
