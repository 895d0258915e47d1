from django.contrib import admin

from workspaces.models import AuditEvent, Invitation, Membership, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at", "created_by")
    search_fields = ("name", "slug", "memberships__user__email")
    raw_id_fields = ("created_by",)
    inlines = [MembershipInline]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "workspace", "role", "created_at", "expires_at", "accepted_at", "revoked_at")
    list_select_related = ("workspace",)
    search_fields = ("email", "workspace__slug")
    exclude = ("token_hash",)
    raw_id_fields = ("workspace", "invited_by", "accepted_by")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "workspace", "actor_email", "verb", "target")
    list_filter = ("verb",)
    list_select_related = ("workspace",)
    search_fields = ("actor_email", "target", "workspace__slug")
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
