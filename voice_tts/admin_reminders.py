"""Admin for reminder phrases and their play reports, and "pre-generate reminders" actions for phrases and users.

The actions only enqueue (fast); synthesis happens on the batch queue.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from voice_tts.errors import ServiceError
from voice_tts.models import PhrasePlay, ReminderPhrase
from voice_tts.services.phrases import phrase_days_normalise, phrase_times_normalise
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


class ReminderPhraseForm(forms.ModelForm):
    """The admin edits the JSON lists directly; the service's rules judge them, as for the API."""

    class Meta:
        model = ReminderPhrase
        fields = ("owner", "text", "language", "times", "days", "is_active")

    def _normalised(self, field: str, normalise: Any) -> Any:
        try:
            return normalise(self.cleaned_data.get(field) or [])
        except ServiceError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
        except (TypeError, AttributeError):  # not a list (of strings)
            raise forms.ValidationError("Give a JSON list.", code="invalid") from None

    def clean_times(self) -> list[str]:
        return self._normalised("times", lambda value: phrase_times_normalise(times=value))

    def clean_days(self) -> list[int]:
        return self._normalised("days", lambda value: phrase_days_normalise(days=value))


@admin.register(ReminderPhrase)
class ReminderPhraseAdmin(admin.ModelAdmin):
    form = ReminderPhraseForm
    list_display = ("id", "owner", "text", "language", "times", "days", "is_active", "updated_at")
    list_filter = ("is_active", "language")
    search_fields = ("owner__username", "text")
    actions = [pregenerate_for_phrase_owners]


@admin.register(PhrasePlay)
class PhrasePlayAdmin(admin.ModelAdmin):
    """What the Pis reported: read-only (a report is a record, not a setting)."""

    list_display = ("played_at", "owner", "phrase", "outcome", "source", "device", "received_at")
    list_filter = ("outcome", "source")
    search_fields = ("owner__username", "phrase__text", "key")
    list_select_related = ("owner", "phrase", "device")
    date_hierarchy = "played_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


User = get_user_model()
_user_admin_class = type(admin.site._registry.get(User)) if admin.site.is_registered(User) else UserAdmin


class CarePillUserAdmin(_user_admin_class):  # type: ignore[misc,valid-type]
    """The project's user admin (whatever it is) plus the pre-generation action."""

    actions = [*(_user_admin_class.actions or []), pregenerate_for_users]


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, CarePillUserAdmin)
