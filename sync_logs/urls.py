from django.urls import path

from sync_logs import views

app_name = "sync_logs"

urlpatterns = [
    path("", views.run_list, name="runs"),
    path("alerts/", views.alert_settings, name="alerts"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/export.csv", views.run_export, name="run-export"),
    path("runs/<int:run_id>/retry/", views.run_retry, name="run-retry"),
    path("runs/<int:run_id>/records/<int:record_id>/", views.record_detail, name="record"),
    path("runs/<int:run_id>/records/<int:record_id>/retry/", views.record_retry, name="record-retry"),
    path("runs/<int:run_id>/requests/<int:exchange_id>/", views.exchange_detail, name="exchange"),
]
