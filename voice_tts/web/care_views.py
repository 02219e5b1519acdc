"""The reminder loop on the caregiver's pages: today's doses and the Pi's contact (on the home
page), the last seven days, and where alerts go (with a real test message).

Every read is by the signed-in owner; the forms carry the CSRF token.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from voice_tts.errors import ServiceError
from voice_tts.services.care import care_settings_get, care_settings_update, device_last_contact
from voice_tts.services.care_alerts import care_alert_test, care_alerts_recent
from voice_tts.services.doses import doses_of_day, doses_week, household_zone
from voice_tts.web.forms import AlertSettingsForm
from voice_tts.web.wording import (
    DOSE_MARKS,
    alert_kind_words,
    alert_status_words,
    dose_state_name,
    dose_words,
    refusal_words,
)

# Offered in the zone field's list (any IANA name is accepted).
COMMON_ZONES = ["Asia/Seoul", "Asia/Tokyo", "America/Los_Angeles", "America/New_York", "Europe/London",
                "Europe/Berlin", "Australia/Sydney", "UTC"]


def care_home_context(*, owner_id: int) -> dict[str, Any]:
    """Today's doses in words, and the Pi's last contact, for the home page."""
    care = care_settings_get(owner_id=owner_id)
    zone = household_zone(care)
    now = timezone.now()
    today = now.astimezone(zone).date()
    doses = [{"dose": d, "time": d.local_time, "words": dose_words(d, zone)}
             for d in doses_of_day(owner_id=owner_id, local_date=today)]
    last = device_last_contact(owner_id=owner_id)
    silent_after = dt.timedelta(minutes=settings.DEVICE_SILENT_MINUTES)
    return {
        "doses": doses,
        "household_zone": str(zone),
        "pi_last_contact": last,
        "pi_silent": last is not None and now - last > silent_after,
        "pi_never": last is None,
        "zone_mismatch": bool(care.timezone and care.device_timezone and care.timezone != care.device_timezone),
        "device_zone": care.device_timezone,
    }


@login_required
@require_GET
def week(request: HttpRequest) -> HttpResponse:
    care = care_settings_get(owner_id=request.user.id)
    zone = household_zone(care)
    today = timezone.now().astimezone(zone).date()
    dates, rows = doses_week(owner_id=request.user.id, last_day=today)
    table = []
    for row in rows:
        cells = []
        for day in dates:
            doses = row.days[day]
            cells.append({
                "marks": " ".join(DOSE_MARKS[d.state] for d in doses),
                "words": ", ".join(f"{d.local_time} {dose_state_name(d.state)}" for d in doses) or _("No reminder"),
            })
        rate = row.rate
        table.append({"text": row.text, "cells": cells, "confirmed": row.confirmed, "closed": row.closed,
                      "rate": None if rate is None else round(rate * 100), "bar": "█" * round((rate or 0) * 10)})
    legend = [(mark, dose_state_name(state)) for state, mark in DOSE_MARKS.items()]
    return render(request, "web/week.html", {"dates": dates, "table": table, "legend": legend, "nav": "week",
                                             "household_zone": str(zone)})


def _alerts_page(request: HttpRequest, form: AlertSettingsForm, *, status: int = 200) -> HttpResponse:
    care = care_settings_get(owner_id=request.user.id)
    zone = household_zone(care)
    recent = [{"when": alert.created_at.astimezone(zone).strftime("%m/%d %H:%M"), "kind": alert_kind_words(alert.kind),
               "recipient": alert.recipient, "status": alert_status_words(alert.status), "alert": alert}
              for alert in care_alerts_recent(owner_id=request.user.id)]
    return render(request, "web/alerts.html", {
        "recent": recent,
        "form": form, "nav": "alerts", "zones": COMMON_ZONES, "household_zone": str(household_zone(care)),
        "device_zone": care.device_timezone, "account_email": request.user.email,
        "window": settings.DOSE_ALERT_MINUTES, "silent": settings.DEVICE_SILENT_MINUTES,
    }, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def alerts(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        care = care_settings_get(owner_id=request.user.id)
        return _alerts_page(request, AlertSettingsForm(initial={
            "alert_email": care.alert_email, "alert_webhook_url": care.alert_webhook_url,
            "alert_language": care.alert_language, "timezone": care.timezone,
            "quiet_start": care.quiet_start, "quiet_end": care.quiet_end,
        }))
    form = AlertSettingsForm(request.POST)
    if not form.is_valid():
        return _alerts_page(request, form, status=400)
    values = form.cleaned_data
    try:
        care_settings_update(
            owner_id=request.user.id, timezone_name=values["timezone"].strip(), alert_email=values["alert_email"],
            alert_webhook_url=values["alert_webhook_url"], alert_language=values["alert_language"],
            quiet_start=values["quiet_start"], quiet_end=values["quiet_end"],
        )
    except ServiceError as exc:
        field = {"invalid_timezone": "timezone", "quiet_hours_incomplete": "quiet_end",
                 "quiet_hours_empty": "quiet_end"}.get(exc.code, "alert_webhook_url")
        form.add_error(field, refusal_words(exc))
        return _alerts_page(request, form, status=400)
    messages.success(request, _("Alert settings saved."))
    return redirect("web:alerts")


@login_required
@require_POST
def alerts_test(request: HttpRequest) -> HttpResponse:
    """시험 알림 보내기: a real message on every channel, sent by a worker."""
    try:
        sent = care_alert_test(owner_id=request.user.id)
    except ServiceError as exc:
        messages.error(request, refusal_words(exc))
    else:
        where = ", ".join(alert.recipient for alert in sent)
        messages.success(request, _("A test alert is on its way to %(where)s.") % {"where": where})
    return redirect("web:alerts")

