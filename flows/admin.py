from django.contrib import admin

from flows.models import CaptureToken, Contact, ConversionFlow, FlowField


class FlowFieldInline(admin.TabularInline):
    model = FlowField
    extra = 0


@admin.register(ConversionFlow)
class ConversionFlowAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "public_id", "is_enabled", "created_at")
    list_filter = ("is_enabled",)
    list_select_related = ("workspace",)
    search_fields = ("name", "public_id", "workspace__slug", "workspace__name")
    raw_id_fields = ("workspace",)
    inlines = [FlowFieldInline]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("email", "workspace", "flow", "source", "created_at")
    list_filter = ("source",)
    list_select_related = ("workspace", "flow")
    search_fields = ("=email", "workspace__slug")
    raw_id_fields = ("workspace", "flow")
    readonly_fields = ("workspace", "flow", "data", "email", "source", "created_at")
    show_full_result_count = False  # no COUNT(*) over millions of contacts

    def has_change_permission(self, request, obj=None) -> bool:  # contacts are immutable
        return False


@admin.register(CaptureToken)
class CaptureTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "workspace", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("workspace",)
    search_fields = ("prefix", "workspace__slug")
    readonly_fields = ("workspace", "prefix", "created_at", "created_by", "last_used_at")
    exclude = ("token_hash",)
