"""When each reminder is due: pure functions of the bundle's phrases, a zone and a span.

A phrase says its local times ("HH:MM", sorted; empty = no fixed time, never scheduled
here) and its ISO weekdays (1 = Monday .. 7 = Sunday; empty = every day). Each (phrase,
local date, time) is one occurrence, due at the FIRST instant whose local wall clock
reads that date and time or later. Around daylight saving changes that means:

- spring forward: a time the clock skips (02:30 when 02:00 jumps to 03:00) is due at
  the jump itself, 03:00 new time, rather than an hour late or never;
- fall back: a time the clock shows twice (01:30) is due the first time; the second
  01:30 is the same (phrase, date, time) key, so it is never a second occurrence.

Weekdays are judged by the local date of the occurrence. Nothing here reads a file or
the clock: the runner passes both in, and the tests pass fake ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

UTC = dt.timezone.utc


@dataclass(frozen=True)
class Occurrence:
    phrase_id: int
    local_date: dt.date
    time: str  # "HH:MM", as the phrase says it
    due: dt.datetime  # aware, UTC

    @property
    def key(self) -> str:
        """(phrase, local date, time): what the played log remembers."""
        return f"{self.phrase_id}:{self.local_date.isoformat()}:{self.time}"


def parse_time(value: object) -> dt.time | None:
    """A "HH:MM" string (00:00 to 23:59, two digits each) as a time; anything else is None."""
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        return None
    hours, minutes = value[:2], value[3:]
    if not (hours.isdigit() and minutes.isdigit()) or not hours.isascii() or not minutes.isascii():
        return None
    if int(hours) > 23 or int(minutes) > 59:
        return None
    return dt.time(int(hours), int(minutes))


def phrase_problems(phrase: Mapping[str, Any]) -> list[str]:
    """What in a bundle entry the schedule cannot use (it skips those parts)."""
    problems = []
    if not isinstance(phrase.get("id"), int):
        problems.append(f"no integer id: {phrase.get('id')!r}")
    times = phrase.get("times") or []
    days = phrase.get("days") or []
    if not isinstance(times, list):
        problems.append(f"times is not a list: {times!r}")
    else:
        problems += [f"bad time {t!r}" for t in times if parse_time(t) is None]
    if not isinstance(days, list):
        problems.append(f"days is not a list: {days!r}")
    else:
        problems += [f"bad weekday {d!r}" for d in days if not _is_weekday(d)]
    return problems


def _is_weekday(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 7


def due_instant(local_date: dt.date, local_time: dt.time, zone: dt.tzinfo) -> dt.datetime:
    """The first instant (UTC) at which the wall clock in `zone` reads date+time or later."""
    wall = dt.datetime.combine(local_date, local_time)
    # fold=0 is the earlier of two readings of a repeated time: the first instant.
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == wall:
        return first
    # A skipped time. zoneinfo maps it with the offset from before the jump (fold=0) or after
    # it (fold=1); the jump lies between the two readings, and the wall clock only moves
    # forward across it, so a search finds the first second that reads `wall` or later.
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = sorted((first, second))
    if _wall(low, zone) >= wall:  # not a simple gap (should not happen): the earlier reading
        return low
    low_s, high_s = int(low.timestamp()), int(high.timestamp()) + 1
    while high_s - low_s > 1:  # invariant: wall(low_s) < wall <= wall(high_s)
        middle = (low_s + high_s) // 2
        if _wall(dt.datetime.fromtimestamp(middle, UTC), zone) >= wall:
            high_s = middle
        else:
            low_s = middle
    return dt.datetime.fromtimestamp(high_s, UTC)


def _wall(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def occurrences(phrases: Iterable[Mapping[str, Any]], zone: dt.tzinfo, start: dt.datetime,
                end: dt.datetime) -> list[Occurrence]:
    """Every occurrence due in [start, end] (aware datetimes), by due instant then phrase id.

    Phrases without times, and the parts of a phrase that do not parse (phrase_problems),
    are skipped.
    """
    if end < start:
        return []
    # One local day of margin on each side: a zone's offset can put an occurrence of the
    # previous or next local date inside the span.
    first_day = start.astimezone(zone).date() - dt.timedelta(days=1)
    last_day = end.astimezone(zone).date() + dt.timedelta(days=1)
    found = []
    for phrase in phrases:
        phrase_id = phrase.get("id")
        times = phrase.get("times") or []
        days = phrase.get("days") or []
        if not isinstance(phrase_id, int) or not isinstance(times, list) or not isinstance(days, list):
            continue
        slots = [(t, parsed) for t in times if (parsed := parse_time(t)) is not None]
        weekdays = {d for d in days if _is_weekday(d)}
        if not slots or (days and not weekdays):
            continue  # no usable time, or only unusable weekdays: never guess
        day = first_day
        while day <= last_day:
            if not weekdays or day.isoweekday() in weekdays:
                for text, local_time in slots:
                    due = due_instant(day, local_time, zone)
                    if start <= due <= end:
                        found.append(Occurrence(phrase_id, day, text, due))
            day += dt.timedelta(days=1)
    found.sort(key=lambda o: (o.due, o.phrase_id, o.time))
    return found


def next_due(phrases: Iterable[Mapping[str, Any]], zone: dt.tzinfo, after: dt.datetime,
             horizon: dt.timedelta) -> dt.datetime | None:
    """The earliest due instant strictly after `after` and within `horizon`, if any."""
    upcoming = [o.due for o in occurrences(phrases, zone, after, after + horizon) if o.due > after]
    return min(upcoming, default=None)
