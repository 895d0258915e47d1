from django.contrib import admin

from erasure.models import ErasureRequest, ErasureStep


class ErasureStepInline(admin.TabularInline):
    model = ErasureStep
    fields = ("destination_label", "people", "status", "attempts", "due_at", "last_error", "done_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ErasureRequest)
class ErasureRequestAdmin(admin.ModelAdmin):
    """The record of each erasure: who, when, how, what was done. No personal data (the contact
    ids name nobody once the contacts are gone)."""

    list_display = ("id", "workspace", "via", "mode", "created_at", "contacts_erased", "completed_at")
    list_filter = ("via", "mode")
    list_select_related = ("workspace",)
    search_fields = ("workspace__slug",)
    fields = (
        "workspace",
        "requested_by",
        "via",
        "mode",
        "created_at",
        "contacts_erased",
        "log_rows_scrubbed",
        "outbox_rows_removed",
        "completed_at",
    )
    readonly_fields = fields
    inlines = [ErasureStepInline]

    def has_add_permission(self, request):
        return False  # made by "Erase these people" on contacts, the app or the capture API

    def has_change_permission(self, request, obj=None):
        return False
