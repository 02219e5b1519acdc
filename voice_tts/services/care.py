"""A household's care settings (zone, where alerts go, quiet hours) and its Pi's contact.

The account is the household. The Pi is "heard from" whenever its device token is used: the
token's `last_seen_at` (services.tokens.device_seen, at most one write a minute), and at least once
a minute by `carepill-voice run`'s heartbeat, which also reports the Pi's zone.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Max
from django.utils import timezone

from voice_tts.errors import ServiceError
from voice_tts.models import AccessToken, CareSettings
from voice_tts.services.doses import doses_schedule_after_commit, household_zone_name
from voice_tts.services.webhook_targets import webhook_url_check


def zone_checked(*, name: str) -> str:
    """An IANA zone name ("Asia/Seoul"), or a refusal that says so."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ServiceError("invalid_timezone", f"{name!r} is not an IANA time zone (for example Asia/Seoul).") from None
    return name


def care_settings_get(*, owner_id: int) -> CareSettings:
    """The household's settings; defaults (unsaved) when it never set any: reading writes nothing."""
    return CareSettings.objects.filter(owner_id=owner_id).first() or CareSettings(owner_id=owner_id)


def care_settings_update(
    *,
    owner_id: int,
    timezone_name: str,
    alert_email: str,
    alert_webhook_url: str,
    alert_language: str,
    quiet_start: dt.time | None,
    quiet_end: dt.time | None,
) -> CareSettings:
    if timezone_name:
        zone_checked(name=timezone_name)
    if alert_webhook_url:
        webhook_url_check(url=alert_webhook_url, owner_id=owner_id)
    if (quiet_start is None) != (quiet_end is None):
        raise ServiceError("quiet_hours_incomplete", "Quiet hours need both a start and an end.")
    if quiet_start is not None and quiet_start == quiet_end:
        raise ServiceError("quiet_hours_empty", "Quiet hours must start and end at different times.")
    if alert_language not in CareSettings.Language.values:
        choices = ", ".join(CareSettings.Language.values)
        raise ServiceError("invalid_language", f"alert_language must be one of {choices}.")
    care, _ = CareSettings.objects.get_or_create(owner_id=owner_id)
    zone_changed = care.timezone != timezone_name
    care.timezone = timezone_name
    care.alert_email = alert_email
    care.alert_webhook_url = alert_webhook_url
    care.alert_language = alert_language
    care.quiet_start, care.quiet_end = quiet_start, quiet_end
    care.save()
    if zone_changed:
        doses_schedule_after_commit(owner_id=owner_id)
    return care


def alert_email_of(*, care: CareSettings) -> str:
    """Where alert mail goes: the address set on the pages, else the account's email ("" if none)."""
    if care.alert_email:
        return care.alert_email
    return get_user_model().objects.filter(id=care.owner_id).values_list("email", flat=True).first() or ""


def in_quiet_hours(*, care: CareSettings, local: dt.datetime) -> dt.datetime | None:
    """When `local` (household time) falls in the quiet hours, the local instant they end; else None.
    Quiet hours may run over midnight (22:00-07:00)."""
    start, end = care.quiet_start, care.quiet_end
    if start is None or end is None:
        return None
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:  # over midnight
        inside = clock >= start or clock < end
        end_day = local.date() + dt.timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    return dt.datetime.combine(end_day, end, tzinfo=local.tzinfo)


# --- The Pi's contact ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Heartbeat:
    received_at: dt.datetime
    household_timezone: str
    device_timezone: str

    @property
    def timezone_mismatch(self) -> bool:
        return bool(self.device_timezone) and self.device_timezone != self.household_timezone


def device_heartbeat(*, owner_id: int, device_id: int, timezone_name: str = "") -> Heartbeat:
    """The Pi says it is alive (and in which zone). One UPDATE of its token's last contact, and
    one of the household's row only when the zone it reports changed."""
    if timezone_name:
        zone_checked(name=timezone_name)
    now = timezone.now()
    AccessToken.objects.filter(id=device_id, owner_id=owner_id).update(last_seen_at=now)
    care = CareSettings.objects.filter(owner_id=owner_id).first()
    if timezone_name and (care is None or care.device_timezone != timezone_name):
        care, _ = CareSettings.objects.get_or_create(owner_id=owner_id)
        CareSettings.objects.filter(id=care.id).update(device_timezone=timezone_name)
        care.device_timezone = timezone_name
        if not care.timezone:  # the Pi's zone is the household's: its doses follow
            doses_schedule_after_commit(owner_id=owner_id)
    return Heartbeat(received_at=now, household_timezone=household_zone_name(care),
                     device_timezone=care.device_timezone if care is not None else "")


def device_last_contact(*, owner_id: int) -> dt.datetime | None:
    """The last time any of the household's Pis was heard from (None: none ever connected)."""
    return (AccessToken.objects.filter(owner_id=owner_id).exclude(device_name="")
            .aggregate(last=Max("last_seen_at"))["last"])


def devices_last_contacts() -> dict[int, dt.datetime]:
    """Every household with a Pi that was ever heard from: owner id -> last contact."""
    rows = (AccessToken.objects.exclude(device_name="").exclude(last_seen_at=None)
            .values("owner_id").annotate(last=Max("last_seen_at")))
    return {row["owner_id"]: row["last"] for row in rows}
