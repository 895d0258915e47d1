from django.urls import path

from field_mapping import views

app_name = "field_mapping"

urlpatterns = [
    path("", views.mapping_step, name="mapping"),
    path("preview/", views.mapping_preview, name="preview"),
    path("refresh/", views.schema_refresh_view, name="refresh"),
]
