from django.contrib import admin

from alert_channels.models import AlertChannel, AlertDelivery


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    # The URL and the signing secret are credentials: the admin shows the hint only.
    list_display = ("name", "kind", "workspace", "address_hint", "last_delivered_at", "last_error")
    list_filter = ("kind",)
    search_fields = ("workspace__slug", "name")
    fields = (
        "workspace",
        "kind",
        "name",
        "address_hint",
        "created_by",
        "created_at",
        "last_attempt_at",
        "last_delivered_at",
        "last_error",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # made in the app, where the address is checked


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "channel", "event", "status", "attempts", "last_error")
    list_filter = ("status", "event")
    list_select_related = ("channel__workspace",)
    readonly_fields = (
        "channel",
        "public_id",
        "event",
        "subject",
        "message",
        "link",
        "attempts",
        "created_at",
        "delivered_at",
    )
    fields = (*readonly_fields, "status", "due_at", "last_error")

    def has_add_permission(self, request):
        return False
