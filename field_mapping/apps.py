from django.apps import AppConfig


class FieldMappingConfig(AppConfig):
    name = "field_mapping"
