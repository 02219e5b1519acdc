"""Admin for reminder phrases, and "pre-generate reminders" actions for phrases and users.

The actions only enqueue (fast); synthesis happens on the batch queue.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from voice_tts.models import ReminderPhrase
from voice_tts.services.reminders import reminders_pregenerate


def _pregenerate(modeladmin: admin.ModelAdmin, request: HttpRequest, owner_ids: list[int]) -> None:
    summary = reminders_pregenerate(owner_ids=owner_ids)
    level = messages.WARNING if summary.failed else messages.SUCCESS
    modeladmin.message_user(request, f"Reminder pre-generation: {summary.line()}.", level)
    for error in summary.errors[:20]:
        modeladmin.message_user(request, error, messages.ERROR)


@admin.action(description="Pre-generate reminder clips for the owners of the selected phrases")
def pregenerate_for_phrase_owners(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _pregenerate(modeladmin, request, sorted(set(queryset.values_list("owner_id", flat=True))))


@admin.action(description="Pre-generate reminder clips for the selected users")
def pregenerate_for_users(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _pregenerate(modeladmin, request, sorted(queryset.values_list("id", flat=True)))


@admin.register(ReminderPhrase)
class ReminderPhraseAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "text", "language", "times", "is_active", "updated_at")
    list_filter = ("is_active", "language")
    search_fields = ("owner__username", "text")
    actions = [pregenerate_for_phrase_owners]


User = get_user_model()
_user_admin_class = type(admin.site._registry.get(User)) if admin.site.is_registered(User) else UserAdmin


class CarePillUserAdmin(_user_admin_class):  # type: ignore[misc,valid-type]
    """The project's user admin (whatever it is) plus the pre-generation action."""

    actions = [*(_user_admin_class.actions or []), pregenerate_for_users]


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, CarePillUserAdmin)
