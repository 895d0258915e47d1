from django.contrib import admin

from integrations.models import Integration


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    """SECURITY: credentials are never shown or editable here; only the last 4 characters of a key."""

    list_display = ("workspace", "kind", "status", "auth_method", "masked_key", "region", "connected_at", "verified_at")
    list_filter = ("kind", "status", "auth_method", "region")
    list_select_related = ("workspace", "connected_by")
    search_fields = ("workspace__slug", "workspace__name", "key_last4")
    raw_id_fields = ("workspace", "connected_by")
    exclude = ("credentials",)
    readonly_fields = (
        "masked_key",
        "auth_method",
        "key_last4",
        "connected_by",
        "connected_at",
        "verified_at",
        "error_code",
        "error_message",
        "error_since",
        "created_at",
        "updated_at",
    )

    @admin.display(description="Key")
    def masked_key(self, obj: Integration) -> str:
        return obj.masked_key or ("OAuth" if obj.auth_method == "oauth" else "—")
