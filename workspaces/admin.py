from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from flows.models import Contact
from integrations.models import Integration
from lib.admin_tools import ReadOnlyAdmin, admin_link, capped_count_text
from sync_logs.models import SyncRun
from workspaces.models import AuditEvent, Invitation, Membership, Workspace
from workspaces.services import audit_record


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


class IntegrationInline(admin.TabularInline):
    """What the workspace is connected to, at a glance; acting on one is on the Integration page."""

    model = Integration
    extra = 0
    can_delete = False
    show_change_link = True
    # Listed one by one: the credentials never reach this page.
    fields = ("kind", "status", "masked_key", "paused_at", "verified_at", "error_code")
    readonly_fields = fields

    @admin.display(description="Key")
    def masked_key(self, obj: Integration) -> str:
        return obj.masked_key or ("OAuth" if obj.auth_method == Integration.AuthMethod.OAUTH else "—")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at", "created_by")
    list_select_related = ("created_by",)
    search_fields = ("name", "slug", "memberships__user__email")
    raw_id_fields = ("created_by",)
    # Counted on this workspace's page only, never per row of the list.
    readonly_fields = ("created_at", "contacts", "runs", "audit_events")
    fields = ("name", "slug", "created_by", "created_at", "contacts", "runs", "audit_events")
    inlines = [MembershipInline, IntegrationInline]

    # Support's edits here skip the app's services, so they are audited here, in the workspace's own trail.

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if form.changed_data:
            audit_record(
                workspace=obj,
                actor=request.user,
                verb="admin.workspace_changed" if change else "admin.workspace_created",
                target=obj.name,
                data={"staff": True, "fields": form.changed_data},
            )

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        before = {m.pk: (m.user.email, m.role) for m in formset.get_queryset().select_related("user")}
        # Read before saving: a deleted instance loses its pk.
        removed = [before[f.instance.pk] for f in formset.deleted_forms if f.instance.pk in before]
        saved = formset.save()
        changes = [{"member": m.user.email, "role": m.role, "was": before.get(m.pk, (None, None))[1]} for m in saved]
        changes += [{"member": email, "removed": True, "was": role} for email, role in removed]
        if changes:
            audit_record(
                workspace=form.instance,
                actor=request.user,
                verb="admin.members_changed",
                target=form.instance.name,
                data={"staff": True, "changes": changes},
            )
        return None

    @admin.display(description="Contacts")
    def contacts(self, obj: Workspace) -> str:
        if obj.pk is None:
            return "—"
        url = f"{reverse('admin:flows_contact_changelist')}?workspace__id__exact={obj.pk}"
        # Capped: the workspace_newest index makes this cheap up to the cap, not at millions.
        return admin_link(url, capped_count_text(Contact.objects.filter(workspace=obj)))

    @admin.display(description="Sync runs")
    def runs(self, obj: Workspace) -> str:
        if obj.pk is None:
            return "—"
        url = f"{reverse('admin:sync_logs_syncrun_changelist')}?integration__workspace__id__exact={obj.pk}"
        return admin_link(url, capped_count_text(SyncRun.objects.filter(integration__workspace=obj)))

    @admin.display(description="Audit trail")
    def audit_events(self, obj: Workspace) -> str:
        if obj.pk is None:
            return "—"
        url = f"{reverse('admin:workspaces_auditevent_changelist')}?workspace__id__exact={obj.pk}"
        return format_html('<a href="{}">events of this workspace</a>', url)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "workspace", "role", "created_at", "expires_at", "accepted_at", "revoked_at")
    list_select_related = ("workspace",)
    search_fields = ("email", "workspace__slug")
    exclude = ("token_hash",)
    raw_id_fields = ("workspace", "invited_by", "accepted_by")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "workspace", "actor_email", "verb", "target")
    list_filter = ("verb",)
    list_select_related = ("workspace",)
    search_fields = ("actor_email", "target", "workspace__slug")
    show_full_result_count = False
