"""Play reports: what a Pi says it spoke, and when.

The Pi resends a report until it gets an answer, so recording is idempotent on the key
it chose: a resend returns the row already stored, and the unique (owner, key)
constraint settles two resends that race.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from voice_tts.errors import ServiceError
from voice_tts.models import PhrasePlay, ReminderPhrase
from voice_tts.services.doses import dose_play_attach

# A Pi keeps unsent reports while offline; older ones, or ones from the future (a Pi has no
# battery clock: before its first time sync it may believe it is 1970), are a wrong clock.
# What a play's `outcome` and `source` may be, for the API's schema.
PLAY_OUTCOMES: list[tuple[str, str]] = PhrasePlay.Outcome.choices
PLAY_SOURCES: list[tuple[str, str]] = PhrasePlay.Source.choices
PLAY_REPORT_MAX_AGE = dt.timedelta(days=90)
PLAY_REPORT_MAX_AHEAD = dt.timedelta(days=1)


def phrase_play_record(
    *,
    owner_id: int,
    phrase_id: int,
    key: str,
    played_at: dt.datetime,
    outcome: str,
    source: str,
    device_id: int | None = None,
    scheduled_date: dt.date | None = None,
    scheduled_time: str | None = None,
) -> tuple[PhrasePlay, bool]:
    """Store one play of the owner's phrase; (the play, whether it is new).

    With the occurrence it played (`scheduled_date`, `scheduled_time`: the household-local date
    and "HH:MM"), a new play is counted on that dose in the same transaction; a resend is not."""
    now = timezone.now()
    if not now - PLAY_REPORT_MAX_AGE <= played_at <= now + PLAY_REPORT_MAX_AHEAD:
        raise ServiceError(
            "played_at_out_of_range",
            "played_at must lie within the last 90 days (and not more than a day ahead): check the Pi's clock.",
        )
    phrase = ReminderPhrase.objects.filter(id=phrase_id, owner_id=owner_id).first()
    if phrase is None:
        # Another user's phrase is not revealed: the same answer as a missing one.
        raise ServiceError("not_found", "Not found.")
    if (scheduled_date is None) != (scheduled_time is None):
        raise ServiceError("occurrence_incomplete", "scheduled_date and scheduled_time go together.")
    play = PhrasePlay.objects.filter(owner_id=owner_id, key=key).first()
    created = False
    if play is None:
        try:
            with transaction.atomic():
                play = PhrasePlay.objects.create(
                    owner_id=owner_id, phrase_id=phrase_id, key=key, played_at=played_at, outcome=outcome,
                    source=source, device_id=device_id,
                )
                if scheduled_date is not None and scheduled_time is not None:
                    dose = dose_play_attach(phrase=phrase, local_date=scheduled_date, local_time=scheduled_time,
                                            played_at=played_at, outcome=outcome)
                    PhrasePlay.objects.filter(id=play.id).update(dose=dose)
                    play.dose = dose
            created = True
        except IntegrityError:  # the same report, resent while the first was being stored
            play = PhrasePlay.objects.filter(owner_id=owner_id, key=key).first()
            if play is None:  # not a race on the key (a device revoked meanwhile, a phrase deleted)
                raise
    if play.phrase_id != phrase_id:
        raise ServiceError("play_key_conflict", "This key was already reported for another phrase.")
    return play, created


def phrase_plays_of(*, phrase: ReminderPhrase) -> QuerySet[PhrasePlay]:
    """The plays of a phrase the caller already owns (`phrase_get`), for paging by the API."""
    return PhrasePlay.objects.filter(phrase=phrase)
