"""Admin for voices, jobs and clips, with an audio player on each change page.

The audio is served by an admin view (staff only), never from MEDIA_URL.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from voice_tts.http.audio import audio_file_response
from voice_tts.models import AccessToken, Clip, DisabledWebhookUrl, Job, Voice, WebhookDelivery, WebhookSecret
from voice_tts.services.users import users_deactivate


class AudioAdminMixin:
    """Adds `<pk>/audio/` to a ModelAdmin and an <audio> player field."""

    def audio_name(self, obj: Any) -> str | None:
        return obj.audio.name if obj.audio else None

    def get_urls(self) -> list:
        meta = self.model._meta
        name = f"{meta.app_label}_{meta.model_name}_audio"
        extra = [path("<path:object_id>/audio/", self.admin_site.admin_view(self.audio_view), name=name)]
        return extra + super().get_urls()

    def audio_view(self, request: HttpRequest, object_id: str) -> Any:
        obj = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, obj):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        return audio_file_response(self.audio_name(obj), filename=f"{object_id}.wav")

    @admin.display(description="listen")
    def player(self, obj: Any) -> str:
        if obj.pk is None or not self.audio_name(obj):
            return "-"
        meta = self.model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_audio", args=[obj.pk])
        return format_html('<audio controls preload="none" src="{}"></audio>', url)


@admin.register(Voice)
class VoiceAdmin(AudioAdminMixin, admin.ModelAdmin):
    list_display = ("id", "owner", "duration_seconds", "language", "is_active", "created_at")
    list_filter = ("is_active", "language")
    search_fields = ("owner__username", "transcript")
    readonly_fields = ("player", "audio", "duration_seconds", "sample_rate", "created_at")


@admin.register(Clip)
class ClipAdmin(AudioAdminMixin, admin.ModelAdmin):
    list_display = ("cache_key", "owner", "text", "language", "engine", "duration_seconds", "access_count",
                    "last_accessed_at")
    list_filter = ("engine", "language")
    search_fields = ("owner__username", "text", "cache_key")
    readonly_fields = ("player", "cache_key", "audio", "engine", "model_version", "duration_seconds", "sample_rate",
                       "access_count", "last_accessed_at", "created_at")


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    readonly_fields = ("attempt", "url", "status_code", "delivered", "error", "created_at")


@admin.register(Job)
class JobAdmin(AudioAdminMixin, admin.ModelAdmin):
    list_display = ("id", "owner", "status", "text", "cache_hit", "error_code", "processing_time_ms", "created_at")
    # `held`: waiting for its owner's turn (services.turns), not sent to the broker yet.
    list_filter = ("status", "held", "priority", "cache_hit", "error_code")
    search_fields = ("id", "owner__username", "text")
    readonly_fields = ("player", "status", "priority", "held", "released_at", "error_code", "error_message",
                       "cache_hit", "cache_key", "clip", "attempts", "task_id", "enqueued_at", "enqueue_count",
                       "webhook_status", "created_at", "started_at", "finished_at", "processing_time_ms")
    inlines = [WebhookDeliveryInline]

    def audio_name(self, obj: Job) -> str | None:
        return obj.clip.audio.name if obj.clip_id else None


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("job", "attempt", "url", "status_code", "delivered", "error", "created_at")
    list_filter = ("delivered", "status_code")


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    """API tokens: only their digests are stored; deleting one revokes it at once."""

    list_display = ("prefix", "owner", "device_name", "created_at", "expires_at", "last_seen_at")
    search_fields = ("owner__username", "prefix")
    readonly_fields = ("owner", "digest", "prefix", "device_name", "created_at", "expires_at", "last_seen_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # issued by logging in (the key is shown once, to its user)


@admin.register(WebhookSecret)
class WebhookSecretAdmin(admin.ModelAdmin):
    list_display = ("owner", "created_at", "rotated_at", "previous_valid_until")
    exclude = ("secret", "previous_secret")


@admin.register(DisabledWebhookUrl)
class DisabledWebhookUrlAdmin(admin.ModelAdmin):
    """Deleting a row here re-enables the URL for that user."""

    list_display = ("owner", "url", "disabled_at", "job")
    search_fields = ("owner__username", "url")


class CarePillUserAdmin(UserAdmin):
    """Django's user admin, with bulk deactivation that also stops the users' cached tokens."""

    actions = ["deactivate_users"]

    @admin.action(description="Deactivate selected users (their API tokens stop at once)")
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = users_deactivate(users=queryset)
        self.message_user(request, f"Deactivated {count} user(s).")


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), CarePillUserAdmin)


# Reminder phrases and the pre-generation actions (issue 6) live in their own module.
# The reminder loop's records (doses, alert sends), read-only.
import voice_tts.admin_care  # noqa: E402,F401
import voice_tts.admin_reminders  # noqa: E402,F401
