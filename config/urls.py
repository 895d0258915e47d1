from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from flows import api as capture_api
from flows import views as flow_views
from health import views as health_views
from integrations import views as integration_views
from metrics import views as metrics_views

urlpatterns = [
    path(settings.ADMIN_URL, admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("f/<str:public_id>/", flow_views.public_form, name="public-form"),
    path("f/<str:public_id>/thanks/", flow_views.public_form_thanks, name="public-form-thanks"),
    path("c/<str:token>/", flow_views.contact_confirm_view, name="contact-confirm"),
    path("api/v1/contacts", capture_api.contacts_endpoint, name="api-contacts"),
    path("api/v1/devices/disable", capture_api.devices_disable_endpoint, name="api-devices-disable"),
    path("healthz", health_views.healthz, name="healthz"),
    path("metrics", metrics_views.metrics_view, name="metrics"),
    path("integrations/oauth/<slug:kind>/callback/", integration_views.oauth_callback, name="oauth-callback"),
    path("w/<slug:workspace_slug>/", include("flows.urls")),
    path("w/<slug:workspace_slug>/integrations/<slug:kind>/mapping/", include("field_mapping.urls")),
    path("w/<slug:workspace_slug>/integrations/<slug:kind>/logs/", include("sync_logs.urls")),
    path("w/<slug:workspace_slug>/integrations/", include("integrations.urls")),
    path("w/<slug:workspace_slug>/settings/alerts/", include("alert_channels.urls")),
    path("w/<slug:workspace_slug>/settings/privacy/", include("erasure.urls")),
    path("", include("workspaces.urls")),
]
