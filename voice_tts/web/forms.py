"""The pages' forms: what the browser sends, checked before a service sees it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from voice_tts.models import CareSettings, ReminderPhrase
from voice_tts.services.phrases import PHRASE_MAX_TIMES

# ISO weekdays, as the phrase model stores them (1 = Monday ... 7 = Sunday).
WEEKDAYS = [(1, _("Mon")), (2, _("Tue")), (3, _("Wed")), (4, _("Thu")), (5, _("Fri")), (6, _("Sat")), (7, _("Sun"))]
# Empty time inputs the reminder form shows (more can be added on the page).
TIME_INPUTS = 3


class VoiceUploadForm(forms.Form):
    voice_file = forms.FileField(label=_("Recording file"))
    transcript = forms.CharField(label=_("What is said in the recording"), required=False, max_length=500,
                                 widget=forms.Textarea(attrs={"rows": 3}))


class _TimesWidget(forms.MultipleHiddenInput):
    """Reads every `times` value; the template draws the inputs (ReminderForm.time_values)."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[str]:
        return data.getlist(name) if hasattr(data, "getlist") else list(data.get(name) or [])


class MultipleTimeField(forms.Field):
    """Several <input type=time name=times>; empty ones are ignored, at least one is needed."""

    widget = _TimesWidget

    def to_python(self, value: Any) -> list[str]:
        values = value if isinstance(value, list | tuple) else [value] if value else []
        return [str(v).strip() for v in values if str(v).strip()]

    def validate(self, value: list[str]) -> None:
        if not value:
            raise forms.ValidationError(_("Please give at least one time."), code="required")
        if len(value) > PHRASE_MAX_TIMES:
            raise forms.ValidationError(_("A reminder can have at most 24 times."), code="too_many")
        for item in value:
            try:
                forms.TimeField(input_formats=["%H:%M", "%H:%M:%S"]).clean(item)
            except forms.ValidationError:
                raise forms.ValidationError(_("Please give the time as hours and minutes."), code="invalid")


class ReminderForm(forms.Form):
    text = forms.CharField(label=_("What the Pi says"), max_length=500,
                           widget=forms.Textarea(attrs={"rows": 2}))
    times = MultipleTimeField(label=_("Times"))
    days = forms.TypedMultipleChoiceField(label=_("Days"), choices=WEEKDAYS, coerce=int, required=False,
                                          widget=forms.CheckboxSelectMultiple)

    @staticmethod
    def initial_for(phrase: ReminderPhrase) -> dict[str, Any]:
        return {"text": phrase.text, "times": list(phrase.times), "days": list(phrase.days)}

    def phrase_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {"text": data["text"], "times": data["times"], "days": data["days"]}

    def time_values(self) -> list[str]:
        """The times to show in the inputs (what was sent, else the initial ones), padded with empties."""
        if self.is_bound:
            values = [v for v in self.data.getlist("times") if v]
        else:
            values = list(self.initial.get("times") or [])
        return values + [""] * max(1, TIME_INPUTS - len(values))

    def day_values(self) -> set[int]:
        if self.is_bound:
            return {int(v) for v in self.data.getlist("days") if v.isdigit()}
        return set(self.initial.get("days") or [])


class AlertSettingsForm(forms.Form):
    alert_email = forms.EmailField(label=_("Email for alerts"), required=False,
                                   help_text=_("Empty: the account's email."))
    alert_webhook_url = forms.URLField(label=_("Webhook (optional)"), required=False, max_length=2000,
                                       assume_scheme="https")
    alert_language = forms.ChoiceField(label=_("Language of alerts"), choices=CareSettings.Language.choices)
    timezone = forms.CharField(label=_("Time zone of the household"), required=False, max_length=64,
                               widget=forms.TextInput(attrs={"list": "zones", "autocomplete": "off"}),
                               help_text=_("Empty: the Pi's own zone."))
    quiet_start = forms.TimeField(label=_("Quiet hours from"), required=False, input_formats=["%H:%M"],
                                  widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    quiet_end = forms.TimeField(label=_("until"), required=False, input_formats=["%H:%M"],
                                widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
