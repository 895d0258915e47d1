from django.urls import path

from alert_channels import views

app_name = "alert_channels"

urlpatterns = [
    path("", views.alert_channels_page, name="settings"),
    path("status/", views.alert_channels_status, name="status"),
    path("<int:channel_id>/test/", views.alert_channel_test, name="test"),
    path("<int:channel_id>/remove/", views.alert_channel_remove, name="remove"),
]
