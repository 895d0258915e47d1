from django.apps import AppConfig


class AlertChannelsConfig(AppConfig):
    name = "alert_channels"
    verbose_name = "Alert channels"
    default_auto_field = "django.db.models.BigAutoField"
