from django.urls import path

from flows import views

app_name = "flows"

urlpatterns = [
    path("flows/", views.flow_list, name="list"),
    path("flows/new/", views.flow_create_view, name="create"),
    path("flows/<int:flow_id>/", views.flow_detail, name="detail"),
    path("flows/<int:flow_id>/qr.<str:fmt>", views.flow_qr, name="qr"),
    path("flows/<int:flow_id>/qr/print/", views.flow_qr_print, name="qr-print"),
    path("flows/<int:flow_id>/fields/add/", views.field_add, name="field-add"),
    path("flows/<int:flow_id>/fields/<int:field_id>/", views.field_edit, name="field-edit"),
    path("flows/<int:flow_id>/fields/<int:field_id>/delete/", views.field_delete, name="field-delete"),
    path("flows/<int:flow_id>/fields/<int:field_id>/move/", views.field_move, name="field-move"),
    path("contacts/", views.contact_list, name="contacts"),
    path("contacts/<int:contact_id>/", views.contact_detail, name="contact-detail"),
    path("settings/api/", views.api_settings, name="api-settings"),
]
