from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"

    def ready(self) -> None:
        # Every request to every destination is counted, in whichever process makes it.
        from integrations.destinations.http import exchanges_observe
        from lib.metrics import exchange_observe

        exchanges_observe(exchange_observe)
