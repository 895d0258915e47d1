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
]
