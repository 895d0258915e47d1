from django.urls import path

from integrations import views

app_name = "integrations"

urlpatterns = [
    path("", views.integration_list, name="list"),
    path("<slug:kind>/", views.integration_detail, name="detail"),
    path("<slug:kind>/connect/", views.integration_connect, name="connect"),
    path("<slug:kind>/oauth/start/", views.oauth_start, name="oauth-start"),
    path("<slug:kind>/reverify/", views.integration_reverify_view, name="reverify"),
    path("<slug:kind>/disconnect/", views.integration_disconnect_view, name="disconnect"),
    path("<slug:kind>/sync/", views.sync_settings, name="sync-settings"),
    path("<slug:kind>/ready/", views.setup_summary, name="setup-summary"),
    path("<slug:kind>/sync-now/", views.sync_now_view, name="sync-now"),
    path("<slug:kind>/pause/", views.pause_view, name="pause"),
    path("<slug:kind>/sync-panel/", views.sync_panel, name="sync-panel"),
    path("<slug:kind>/runs/<int:run_id>/progress/", views.run_progress, name="run-progress"),
]
