from django.urls import path

from workspaces import views

app_name = "workspaces"

W = "w/<slug:workspace_slug>/"

urlpatterns = [
    path("", views.home, name="home"),
    path("new/", views.workspace_create_view, name="create"),
    path("invitations/<str:token>/", views.invitation_accept_view, name="invitation-accept"),
    # Everything below is a @workspace_view.
    path(W, views.dashboard, name="dashboard"),
    path(W + "settings/", views.workspace_settings, name="settings"),
    path(W + "settings/members/", views.members, name="members"),
    path(W + "settings/members/invite/", views.member_invite, name="member-invite"),
    path(W + "settings/members/leave/", views.member_leave, name="member-leave"),
    path(W + "settings/members/<int:membership_id>/role/", views.member_role, name="member-role"),
    path(W + "settings/members/<int:membership_id>/remove/", views.member_remove, name="member-remove"),
    path(
        W + "settings/invitations/<int:invitation_id>/revoke/", views.invitation_revoke_view, name="invitation-revoke"
    ),
    path(W + "settings/audit/", views.audit_log, name="audit"),
]
