"""Doses: the server's record of each reminder occurrence, and what became of it.

A dose is one (phrase, household-local date, "HH:MM"), made ahead (today and tomorrow) from the
phrase's times and weekdays in the household's zone. Its life:

    upcoming ──play reported──▶ played ──confirmed──▶ confirmed
       │                          │
       └── window closes ──▶ missed   └── window closes ──▶ unconfirmed   (one alert each)

A late play report turns `missed` into `unconfirmed` (it was heard, not confirmed; no new alert),
and a late confirmation confirms whatever state the dose is in. Every transition is a conditional
UPDATE on the state it leaves, so two beat runs, a resent report or a late one never count twice.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from voice_tts.errors import ServiceError
from voice_tts.models import CareSettings, Dose, ReminderPhrase

UTC = dt.UTC
# Doses are made for today and this many days ahead (household time).
DAYS_AHEAD = 1
# The same bounds as play reports: a Pi without a battery clock may believe it is 1970.
REPORT_MAX_AGE = dt.timedelta(days=90)
REPORT_MAX_AHEAD = dt.timedelta(days=1)
# What a dose's `state` may be, for the API's schema.
DOSE_STATES: list[tuple[str, str]] = Dose.State.choices
PLAYED_OUTCOMES = ("played", "fallback")


# --- The household's zone ----------------------------------------------------------------------


def household_zone_name(care: CareSettings | None) -> str:
    """The caregiver's zone, else the Pi's, else the server's (settings.TIME_ZONE)."""
    if care is not None:
        return care.timezone or care.device_timezone or settings.TIME_ZONE
    return settings.TIME_ZONE


def household_zone(care: CareSettings | None) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(household_zone_name(care))


def _care_of(owner_id: int) -> CareSettings | None:
    return CareSettings.objects.filter(owner_id=owner_id).first()


def dose_due_instant(*, local_date: dt.date, local_time: str, zone: dt.tzinfo) -> dt.datetime:
    """The first instant whose wall clock in `zone` reads the date and time, or later: the Pi's rule
    (clients/pi schedule.py). A time the clock skips in spring is due at the jump; a time it shows
    twice in autumn is due the first time."""
    wall = dt.datetime.combine(local_date, dt.time.fromisoformat(local_time))
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: both readings straddle the jump; the wall clock only moves forward across it,
    # and a gap is whole minutes, so step a minute at a time from the earlier reading.
    instant = min(first, wall.replace(tzinfo=zone, fold=1).astimezone(UTC)).replace(second=0, microsecond=0)
    while instant.astimezone(zone).replace(tzinfo=None) < wall:
        instant += dt.timedelta(minutes=1)
    # The jump itself may lie inside that minute only in zones with sub-minute offsets (none today).
    return instant


def _occurrences(phrase: ReminderPhrase, days: Iterable[dt.date]) -> list[tuple[dt.date, str]]:
    return [(day, time) for day in days if not phrase.days or day.isoweekday() in phrase.days for time in phrase.times]


# --- Made ahead ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleSummary:
    made: int
    moved: int
    removed: int


def doses_schedule(*, owner_ids: Iterable[int] | None = None, now: dt.datetime | None = None) -> ScheduleSummary:
    """Make the doses of today and tomorrow (household time) for every active phrase with times;
    move upcoming ones to a changed zone; remove upcoming ones that the schedule no longer has
    (a time edited away, a paused phrase). Idempotent: a rerun makes nothing new.

    A dose is only made for an instant after its phrase was created: a reminder added at noon
    for 08:00 starts tomorrow, rather than being "missed" this morning.
    """
    now = now or timezone.now()
    phrases = ReminderPhrase.objects.filter(is_active=True)
    care_rows = CareSettings.objects.all()
    upcoming = Dose.objects.filter(state=Dose.State.UPCOMING, scheduled_for__gt=now)
    if owner_ids is not None:
        owner_ids = list(owner_ids)
        phrases = phrases.filter(owner_id__in=owner_ids)
        care_rows = care_rows.filter(owner_id__in=owner_ids)
        upcoming = upcoming.filter(owner_id__in=owner_ids)
    care = {row.owner_id: row for row in care_rows}
    by_owner: dict[int, list[ReminderPhrase]] = defaultdict(list)
    for phrase in phrases:
        by_owner[phrase.owner_id].append(phrase)

    wanted: dict[tuple[int, dt.date, str], Dose] = {}
    for owner_id, owned in by_owner.items():
        zone_name = household_zone_name(care.get(owner_id))
        zone = zoneinfo.ZoneInfo(zone_name)
        today = now.astimezone(zone).date()
        days = [today + dt.timedelta(days=n) for n in range(DAYS_AHEAD + 1)]
        for phrase in owned:
            for day, time in _occurrences(phrase, days):
                due = dose_due_instant(local_date=day, local_time=time, zone=zone)
                if due < phrase.created_at:
                    continue
                wanted[(phrase.id, day, time)] = Dose(
                    owner_id=owner_id, phrase_id=phrase.id, text=phrase.text, local_date=day, local_time=time,
                    timezone=zone_name, scheduled_for=due,
                )

    existing = {}
    if wanted:
        dates = {key[1] for key in wanted}
        for dose in Dose.objects.filter(phrase_id__in={key[0] for key in wanted}, local_date__in=dates):
            existing[(dose.phrase_id, dose.local_date, dose.local_time)] = dose
    missing = [dose for key, dose in wanted.items() if key not in existing]
    # ignore_conflicts: a concurrent run (or a play report) made the same dose meanwhile.
    Dose.objects.bulk_create(missing, ignore_conflicts=True)

    moved = 0
    for key, dose in existing.items():
        fresh = wanted[key]
        if dose.state == Dose.State.UPCOMING and dose.scheduled_for != fresh.scheduled_for:
            moved += Dose.objects.filter(id=dose.id, state=Dose.State.UPCOMING).update(
                scheduled_for=fresh.scheduled_for, timezone=fresh.timezone, text=fresh.text)
    stale = [d.id for d in upcoming.only("id", "phrase_id", "local_date", "local_time")
             if (d.phrase_id, d.local_date, d.local_time) not in wanted]
    removed = Dose.objects.filter(id__in=stale, state=Dose.State.UPCOMING).delete()[0] if stale else 0
    return ScheduleSummary(made=len(missing), moved=moved, removed=removed)


def doses_schedule_after_commit(*, owner_id: int) -> None:
    """A phrase changed: its doses follow once the change is committed (the tick would, within a
    minute; the caregiver's page should not show the old times meanwhile)."""
    transaction.on_commit(lambda: doses_schedule(owner_ids=[owner_id]))


# --- Reports from the Pi ---------------------------------------------------------------------------


def dose_for_occurrence(*, phrase: ReminderPhrase, local_date: dt.date, local_time: str) -> Dose:
    """The dose of this occurrence, made now if the schedule had not made it yet: a report that
    arrives before the tick, for a day the tick no longer makes, or for a time the caregiver has
    changed since the Pi's last sync (what the Pi played is recorded as it played it, never refused)."""
    dose = Dose.objects.filter(phrase=phrase, local_date=local_date, local_time=local_time).first()
    if dose is not None:
        return dose
    care = _care_of(phrase.owner_id)
    zone = household_zone(care)
    try:
        with transaction.atomic():
            return Dose.objects.create(
                owner_id=phrase.owner_id, phrase=phrase, text=phrase.text, local_date=local_date,
                local_time=local_time, timezone=household_zone_name(care),
                scheduled_for=dose_due_instant(local_date=local_date, local_time=local_time, zone=zone),
            )
    except IntegrityError:  # made meanwhile by the tick or a concurrent report
        return Dose.objects.get(phrase=phrase, local_date=local_date, local_time=local_time)


def dose_play_attach(*, phrase: ReminderPhrase, local_date: dt.date, local_time: str, played_at: dt.datetime,
                     outcome: str) -> Dose:
    """Count a NEW play report on its dose (the caller stores each report once, by key, in the
    same transaction: a resend never reaches here). A failed play (nothing spoken) is attached
    but not counted."""
    dose = dose_for_occurrence(phrase=phrase, local_date=local_date, local_time=local_time)
    if outcome not in PLAYED_OUTCOMES:
        return dose
    Dose.objects.filter(id=dose.id).update(
        plays=F("plays") + 1,
        first_played_at=Case(
            When(first_played_at__isnull=True, then=Value(played_at)),
            When(first_played_at__gt=played_at, then=Value(played_at)),
            default=F("first_played_at"),
        ),
        last_played_at=Case(
            When(last_played_at__isnull=True, then=Value(played_at)),
            When(last_played_at__lt=played_at, then=Value(played_at)),
            default=F("last_played_at"),
        ),
    )
    Dose.objects.filter(id=dose.id, state=Dose.State.UPCOMING).update(state=Dose.State.PLAYED)
    # Played after its window closed (the Pi was offline, then caught up): heard, not confirmed.
    Dose.objects.filter(id=dose.id, state=Dose.State.MISSED).update(state=Dose.State.UNCONFIRMED)
    dose.refresh_from_db()
    return dose


def dose_confirm(*, owner_id: int, phrase_id: int, local_date: dt.date, local_time: str,
                 confirmed_at: dt.datetime, key: str) -> tuple[Dose, bool]:
    """The senior confirmed this occurrence: (the dose, whether this call confirmed it).

    Idempotent: a resend (same key) or a second confirmation (another key, another button)
    changes nothing and answers the dose as it is. A late confirmation still confirms: the
    caregiver's page then reads "확인함" with its time, after the alert that was sent.
    """
    now = timezone.now()
    if not now - REPORT_MAX_AGE <= confirmed_at <= now + REPORT_MAX_AHEAD:
        raise ServiceError("confirmed_at_out_of_range",
                           "confirmed_at must lie within the last 90 days (and not more than a day ahead).")
    phrase = ReminderPhrase.objects.filter(id=phrase_id, owner_id=owner_id).first()
    if phrase is None:
        raise ServiceError("not_found", "Not found.")
    dose = dose_for_occurrence(phrase=phrase, local_date=local_date, local_time=local_time)
    changed = Dose.objects.filter(id=dose.id).exclude(state=Dose.State.CONFIRMED).update(
        state=Dose.State.CONFIRMED, confirmed_at=confirmed_at, confirmation_key=key)
    dose.refresh_from_db()
    return dose, bool(changed)


# --- Windows ------------------------------------------------------------------------------------


def doses_due_to_close(*, now: dt.datetime) -> list[Dose]:
    """Doses whose window has passed and that are still open (upcoming or played)."""
    deadline = now - dt.timedelta(minutes=settings.DOSE_ALERT_MINUTES)
    return list(Dose.objects.filter(state__in=[Dose.State.UPCOMING, Dose.State.PLAYED], scheduled_for__lte=deadline)
                .select_related("phrase").order_by("scheduled_for", "id"))


def dose_close(*, dose: Dose, now: dt.datetime) -> str | None:
    """Close one dose's window: its new state, or None when another run (or a report that just
    arrived) changed it first. The caller raises the alert in the same transaction."""
    new_state = Dose.State.MISSED if dose.state == Dose.State.UPCOMING else Dose.State.UNCONFIRMED
    changed = Dose.objects.filter(id=dose.id, state=dose.state).update(state=new_state, closed_at=now)
    if not changed:
        return None
    dose.state, dose.closed_at = new_state, now
    return new_state


# --- Reading ------------------------------------------------------------------------------------


def household_today(*, owner_id: int, now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(household_zone(_care_of(owner_id))).date()


def doses_of_day(*, owner_id: int, local_date: dt.date) -> list[Dose]:
    return list(Dose.objects.filter(owner_id=owner_id, local_date=local_date).order_by("scheduled_for", "phrase_id"))


@dataclass(frozen=True)
class WeekRow:
    """One reminder's doses over the week, for the week view."""

    phrase_id: int
    text: str
    days: dict[dt.date, list[Dose]]
    confirmed: int
    closed: int  # confirmed + unconfirmed + missed: the doses that count for the rate

    @property
    def rate(self) -> float | None:
        return self.confirmed / self.closed if self.closed else None


def doses_week(*, owner_id: int, last_day: dt.date, days: int = 7) -> tuple[list[dt.date], list[WeekRow]]:
    """The last `days` household days up to `last_day`, and per reminder its doses on each."""
    dates = [last_day - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]
    doses = Dose.objects.filter(owner_id=owner_id, local_date__in=dates).order_by("scheduled_for", "id")
    rows: dict[int, WeekRow] = {}
    for dose in doses:
        row = rows.get(dose.phrase_id)
        if row is None:
            row = rows[dose.phrase_id] = WeekRow(dose.phrase_id, dose.text, {d: [] for d in dates}, 0, 0)
        row.days[dose.local_date].append(dose)
    counted = []
    for row in rows.values():
        every = [d for day in row.days.values() for d in day]
        confirmed = sum(d.state == Dose.State.CONFIRMED for d in every)
        closed = sum(d.state in (Dose.State.CONFIRMED, Dose.State.UNCONFIRMED, Dose.State.MISSED) for d in every)
        counted.append(WeekRow(row.phrase_id, row.text, row.days, confirmed, closed))
    return dates, counted
