"""Reminder phrases: create, change, delete, and the Pi's daily bundle.

A phrase is stored with its text normalised exactly as a job's would be, so the clip
made for it (by the nightly batch or by an API job with the same text) is one cache
entry, whoever asked first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, QuerySet, Subquery

from voice_tts.dispatch import reminders_pregenerate_send
from voice_tts.errors import ServiceError
from voice_tts.models import CareSettings, Clip, Job, ReminderPhrase, Voice
from voice_tts.services.clips import PHRASE_PARAMS, clip_cache_key
from voice_tts.services.doses import doses_schedule_after_commit, household_zone_name
from voice_tts.services.job_text import SUPPORTED_LANGUAGES, job_text_normalise
from voice_tts.worker.status import engine_version_current

PHRASE_MAX_TIMES = 24


def phrase_times_normalise(*, times: Iterable[dt.time | str]) -> list[str]:
    """Sorted, unique local "HH:MM" strings (seconds are dropped: reminders are per minute)."""
    result = set()
    for value in times:
        if isinstance(value, str):
            try:
                value = dt.time.fromisoformat(value)
            except ValueError:
                raise ServiceError("invalid_time", f"{value!r} is not a time of day (HH:MM).") from None
        result.add(f"{value.hour:02d}:{value.minute:02d}")
    if len(result) > PHRASE_MAX_TIMES:
        raise ServiceError("too_many_times", f"A phrase may have at most {PHRASE_MAX_TIMES} times of day.")
    return sorted(result)


def phrase_days_normalise(*, days: Iterable[int]) -> list[int]:
    """Sorted, unique ISO weekdays (1 = Monday … 7 = Sunday); empty means every day."""
    result = set()
    for value in days:
        # bool is an int in Python; `true` is not a weekday.
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 7:
            raise ServiceError("invalid_day", f"{value!r} is not an ISO weekday (1 = Monday … 7 = Sunday).")
        result.add(value)
    return sorted(result)


def _phrase_text_checked(*, text: str, language: str) -> str:
    if language not in SUPPORTED_LANGUAGES:
        raise ServiceError("unsupported_language", f"language must be one of {', '.join(SUPPORTED_LANGUAGES)}.")
    return job_text_normalise(text=text)


def _phrase_saved(phrase: ReminderPhrase) -> ReminderPhrase:
    try:
        with transaction.atomic():
            phrase.save()
    except IntegrityError:
        raise ServiceError("phrase_exists", "You already have a phrase with this text and language.")
    return phrase


def _clips_requested(*, owner_id: int) -> None:
    # After commit, so the worker sees the row; in the background, so the caller
    # (CarePill's backend, the admin) never waits for synthesis.
    transaction.on_commit(lambda: reminders_pregenerate_send(owner_id=owner_id))


def phrases_of(*, owner_id: int) -> QuerySet[ReminderPhrase]:
    """The owner's phrases, oldest first."""
    return ReminderPhrase.objects.filter(owner_id=owner_id).order_by("id")


def phrase_get(*, owner_id: int, phrase_id: int) -> ReminderPhrase:
    """The owner's phrase; `not_found` for another user's too (existence is not revealed)."""
    phrase = ReminderPhrase.objects.filter(id=phrase_id, owner_id=owner_id).first()
    if phrase is None:
        raise ServiceError("not_found", "Not found.")
    return phrase


def phrase_create(
    *,
    owner_id: int,
    text: str,
    language: str = "ko",
    times: Iterable[dt.time | str] = (),
    days: Iterable[int] = (),
    is_active: bool = True,
) -> ReminderPhrase:
    phrase = ReminderPhrase(
        owner_id=owner_id,
        text=_phrase_text_checked(text=text, language=language),
        language=language,
        times=phrase_times_normalise(times=times),
        days=phrase_days_normalise(days=days),
        is_active=is_active,
    )
    _phrase_saved(phrase)
    if phrase.is_active and phrase.times:  # a phrase without times has no doses
        doses_schedule_after_commit(owner_id=owner_id)
    if phrase.is_active:
        _clips_requested(owner_id=owner_id)
    return phrase


def phrase_update(
    *,
    phrase: ReminderPhrase,
    text: str | None = None,
    language: str | None = None,
    times: Iterable[dt.time | str] | None = None,
    days: Iterable[int] | None = None,
    is_active: bool | None = None,
) -> ReminderPhrase:
    if language is not None:
        phrase.language = language
    if text is not None or language is not None:
        phrase.text = _phrase_text_checked(text=phrase.text if text is None else text, language=phrase.language)
    if times is not None:
        phrase.times = phrase_times_normalise(times=times)
    if days is not None:
        phrase.days = phrase_days_normalise(days=days)
    if is_active is not None:
        phrase.is_active = is_active
    _phrase_saved(phrase)
    doses_schedule_after_commit(owner_id=phrase.owner_id)
    if phrase.is_active:
        _clips_requested(owner_id=phrase.owner_id)
    return phrase


def phrase_delete(*, phrase: ReminderPhrase) -> None:
    # The clip stays: it is a cache entry that an API job may share. Its doses go with it.
    phrase.delete()


# --- The Pi's bundle -----------------------------------------------------------------


@dataclass(frozen=True)
class PhraseBundleEntry:
    """One active phrase and its clip. The clip fields are None while `status` is "pending";
    `size_bytes` is set only in a bundle of another format than WAV (services/clip_formats.py)."""

    id: int
    text: str
    language: str
    times: list[str]
    days: list[int]
    status: str  # ready | stale | pending
    cache_key: str | None = None
    sha256: str | None = None
    duration_seconds: float | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class PhraseBundle:
    """Everything the Pi needs for today, as data: the API shows it as JSON with each clip's URL
    (apis/phrases.py), the pages as each reminder's state. `audio_format` is None for WAV, the
    bundle as it was before other formats existed."""

    voice_id: Any
    engine: str
    model_version: str
    timezone: str
    dose_alert_minutes: int
    entries: tuple[PhraseBundleEntry, ...]
    audio_format: str | None = None


def phrase_bundle(*, owner_id: int) -> PhraseBundle:
    """Everything the Pi needs for today: each active phrase with its clip, if made.

    `status` per phrase: "ready" (clip for the current voice and model), "stale" (a clip
    of the current voice from older weights: better than a robot voice while the new
    one is being made), "pending" (no clip yet; the Pi speaks its local fallback).
    A fixed number of queries whatever the number of phrases, and only reads: clips are pinned
    and checksummed when stored (services/clips.py clip_store).
    """
    engine = settings.TTS_ENGINE
    voice = Voice.objects.filter(owner_id=owner_id, is_active=True).only("id").first()
    model_version = engine_version_current(engine=engine)
    phrases = list(ReminderPhrase.objects.filter(owner_id=owner_id, is_active=True).order_by("id"))

    keys: dict[int, str] = {}
    if voice is not None and model_version:
        for phrase in phrases:
            keys[phrase.id] = clip_cache_key(
                voice_id=voice.id, text=phrase.text, language=phrase.language, engine=engine,
                model_version=model_version, params=PHRASE_PARAMS,
            )
    exact = {c.cache_key: c for c in Clip.objects.filter(owner_id=owner_id, cache_key__in=set(keys.values()))}
    older: dict[tuple[str, str], Clip] = {}
    if voice is not None and len(exact) < len(phrases):
        candidates = Clip.objects.filter(
            owner_id=owner_id, voice_id=voice.id, engine=engine, text__in={p.text for p in phrases}
        ).order_by("created_at")
        for clip in candidates:
            if clip.params == PHRASE_PARAMS:
                older[(clip.text, clip.language)] = clip  # newest wins

    entries = []
    for phrase in phrases:
        clip = exact.get(keys.get(phrase.id, ""))
        state = "ready"
        if clip is None:
            clip = older.get((phrase.text, phrase.language))
            state = "stale" if clip is not None else "pending"
        entry = PhraseBundleEntry(id=phrase.id, text=phrase.text, language=phrase.language, times=phrase.times,
                                  days=phrase.days, status=state)
        if clip is not None and not clip.sha256:
            # Only a clip whose file was already gone when migration 0010 checksummed the old rows:
            # the sweeper's business, not the Pi's.
            entry = dataclasses.replace(entry, status="pending")
        elif clip is not None:
            entry = dataclasses.replace(entry, cache_key=clip.cache_key, sha256=clip.sha256,
                                        duration_seconds=round(clip.duration_seconds, 3))
        entries.append(entry)

    return PhraseBundle(
        voice_id=voice.id if voice is not None else None,
        engine=engine,
        model_version=model_version,
        timezone=household_zone_name(CareSettings.objects.filter(owner_id=owner_id).first()),
        dose_alert_minutes=settings.DOSE_ALERT_MINUTES,
        entries=tuple(entries),
    )


def phrases_failed(*, owner_id: int) -> dict[tuple[str, str], str]:
    """The owner's reminders whose latest job with the active voice failed: (text, language) ->
    the job's error message. A later job (queued, running or done) for the same text clears it.
    For the caregiver's pages, which say "failed" instead of "being made" forever.

    One query, whatever the number of past jobs: per phrase, the newest of its jobs only (a
    correlated subquery on the (owner, -created_at) index, the same SQL on SQLite and PostgreSQL)."""
    latest = Job.objects.filter(
        owner_id=owner_id, voice__is_active=True, params=PHRASE_PARAMS,
        text=OuterRef("text"), language=OuterRef("language"),
    ).order_by("-created_at", "-id")
    rows = ReminderPhrase.objects.filter(owner_id=owner_id).annotate(
        job_status=Subquery(latest.values("status")[:1]),
        job_message=Subquery(latest.values("error_message")[:1]),
    ).values_list("text", "language", "job_status", "job_message")
    return {(text, language): message or "" for text, language, status, message in rows
            if status == Job.Status.FAILED}
