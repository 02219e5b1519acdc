"""Admin for the reminder loop: doses, alert sends and households' care settings, read-only.

They are records of what happened (the beat, the Pi and the workers write them): staff look and
filter, they never edit, so nothing here can fake a confirmation or re-send an alert.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from voice_tts.models import CareAlert, CareSettings, Dose


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CareAlertInline(admin.TabularInline):
    model = CareAlert
    extra = 0
    can_delete = False
    fields = ("kind", "channel", "status", "recipient", "attempts", "sent_at", "error")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Dose)
class DoseAdmin(ReadOnlyAdmin):
    list_display = ("local_date", "local_time", "owner", "text", "state", "plays", "first_played_at", "confirmed_at")
    list_filter = ("state", ("local_date", admin.DateFieldListFilter))
    date_hierarchy = "scheduled_for"
    search_fields = ("owner__username", "text")
    list_select_related = ("owner",)
    inlines = [CareAlertInline]


@admin.register(CareAlert)
class CareAlertAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "owner", "kind", "channel", "status", "recipient", "attempts", "sent_at")
    list_filter = ("status", "kind", "channel", ("created_at", admin.DateFieldListFilter))
    date_hierarchy = "created_at"
    search_fields = ("owner__username", "recipient")
    list_select_related = ("owner",)


@admin.register(CareSettings)
class CareSettingsAdmin(ReadOnlyAdmin):
    list_display = ("owner", "timezone", "device_timezone", "alert_language", "quiet_start", "quiet_end",
                    "device_silent_since")
    search_fields = ("owner__username",)
    exclude = ("alert_webhook_url",)  # the caregiver's own endpoint: not for every staff member's eyes
