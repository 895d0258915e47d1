from django.urls import path

from erasure import views

app_name = "erasure"

urlpatterns = [
    path("", views.privacy, name="privacy"),
    path("steps/<int:step_id>/retry/", views.erasure_step_retry_view, name="step-retry"),
]
