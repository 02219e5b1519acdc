"""The clip cache: keys, lookups, and storing a synthesised clip exactly once."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
import soundfile
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from voice_tts import result_cache
from voice_tts.errors import ServiceError
from voice_tts.models import Clip, ClipEncoding, ReminderPhrase, Voice
from voice_tts.result_cache import CachedClip

CACHE_KEY_VERSION = 1
# Reminder phrases' clips are made with the engine's defaults (services/phrases.py); an API job with
# the same text and no params shares the clip.
PHRASE_PARAMS: dict[str, Any] = {}


def clip_cache_key(
    *, voice_id: Any, text: str, language: str, engine: str, model_version: str, params: dict[str, Any]
) -> str:
    """Hash of everything that shapes the audio; text must already be normalised."""
    material = json.dumps(
        {
            "v": CACHE_KEY_VERSION,
            "voice": str(voice_id),
            "text": text,
            "language": language,
            "engine": engine,
            "model_version": model_version,
            "params": params,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def clip_lookup(*, owner_id: int, cache_key: str) -> Clip | None:
    return Clip.objects.filter(owner_id=owner_id, cache_key=cache_key).first()


def clip_hit(*, owner_id: int, cache_key: str) -> CachedClip | None:
    """The clip for a cache key with only what a cache-hit answer needs, from the database
    (the result cache's fallback)."""
    row = Clip.objects.filter(owner_id=owner_id, cache_key=cache_key).values_list("id", "duration_seconds").first()
    if row is None:
        return None
    return CachedClip(id=row[0], cache_key=cache_key, duration_seconds=row[1])


def clip_use_record(*, clip_id: int) -> None:
    """Count one use of a clip (LRU eviction orders by the last one): in Redis, flushed to the
    row in batches by `clip_uses_flush`; straight to the row when Redis is down."""
    if not result_cache.clip_use_count(clip_id=clip_id):
        Clip.objects.filter(id=clip_id).update(access_count=F("access_count") + 1, last_accessed_at=timezone.now())


def clip_uses_flush() -> int:
    """Add the uses counted in Redis to the clips' rows, in one transaction; returns how many
    clips were updated (0 when another flush is running). Run by beat every
    CLIP_USE_FLUSH_SECONDS and before an eviction. What a crash can cost: counts reach Redis
    before the answer does, and stay there until this commits; a flush that dies before its
    commit leaves them for the next one; one that dies after its commit but before clearing
    them counts that batch twice. Only Redis losing its data (a restart without persistence)
    loses counts: at most the uses since the last flush."""
    with result_cache.clip_uses_flushing() as taken:
        if not taken:
            return 0
        with transaction.atomic():
            for clip_id, (uses, last) in taken.items():
                changes: dict[str, Any] = {"access_count": F("access_count") + uses}
                if last is not None:  # never move last_accessed_at backwards
                    changes["last_accessed_at"] = Case(
                        When(last_accessed_at__gt=last, then=F("last_accessed_at")), default=Value(last)
                    )
                Clip.objects.filter(id=clip_id).update(**changes)
        return len(taken)


def clip_samples_to_pcm16(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 1:
        samples = samples.reshape(-1) if samples.ndim == 2 and 1 in samples.shape else samples.mean(axis=-1)
    if samples.dtype == np.int16:
        return samples
    floats = samples.astype(np.float32)
    if np.issubdtype(samples.dtype, np.integer):
        floats = floats / float(np.iinfo(samples.dtype).max)
    return np.clip(np.round(np.nan_to_num(floats) * 32767), -32768, 32767).astype(np.int16)


def clip_store(
    *,
    voice: Voice,
    cache_key: str,
    text: str,
    language: str,
    params: dict[str, Any],
    engine: str,
    model_version: str,
    samples: np.ndarray,
    sample_rate: int,
    generation: int | None = None,
) -> Clip:
    """Write the WAV (temp + rename), then the row, then the clip's hit entry. Safe to call twice
    for one key. `generation`: the owner's, if the caller read it before anything the clip is made
    from (the worker, when it loaded the job); else it is read here, before the row is written.

    The row carries the WAV's sha256, and is pinned (kept from the quota) when an active reminder
    phrase of the owner has this text and language and the clip is of the active voice with the
    reminders' params: reading the Pi's bundle then writes nothing. The nightly pre-generation
    reconciles pins (unpins clips no phrase uses any more)."""
    pcm = clip_samples_to_pcm16(samples)
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm, sample_rate, format="WAV", subtype="PCM_16")
    wav = buffer.getvalue()
    name = default_storage.save(f"clips/{voice.owner_id}/{cache_key}.wav", ContentFile(wav))
    fields = dict(
        voice=voice,
        text=text,
        language=language,
        params=params,
        engine=engine,
        model_version=model_version,
        audio=name,
        duration_seconds=len(pcm) / sample_rate,
        sample_rate=sample_rate,
        sha256=hashlib.sha256(wav).hexdigest(),
    )
    if _clip_for_a_reminder(voice=voice, text=text, language=language, params=params):
        fields["pinned"] = True  # never unpinned here: that is the nightly reconciliation's call
    if generation is None:
        # Read before the row is written: the hit entry below must not outlive a deletion of it.
        generation = result_cache.owner_generation(owner_id=voice.owner_id)
    # Usually there is no row yet (the worker holds the clip's lock and just missed the cache):
    # one INSERT. A row that is already there (a `use_cache: false` job re-synthesising, or a
    # writer without the lock) makes it an UPDATE of that row; the file has the same name.
    try:
        clip = Clip.objects.create(owner_id=voice.owner_id, cache_key=cache_key, **fields)
    except IntegrityError:
        clip = _clip_store_lost_race(voice=voice, cache_key=cache_key, fields=fields)
    except DatabaseError:
        if not Clip.objects.filter(owner_id=voice.owner_id, cache_key=cache_key).exists():
            # No row will ever name this file: remove it rather than leave an orphan.
            default_storage.delete(name)
        raise
    cached = CachedClip(id=clip.id, cache_key=cache_key, duration_seconds=clip.duration_seconds)
    transaction.on_commit(lambda: result_cache.clip_remember(owner_id=voice.owner_id, clip=cached,
                                                             generation=generation))
    return clip


def _clip_for_a_reminder(*, voice: Voice, text: str, language: str, params: dict[str, Any]) -> bool:
    if params != PHRASE_PARAMS or not voice.is_active:
        return False
    return ReminderPhrase.objects.filter(owner_id=voice.owner_id, is_active=True, text=text,
                                         language=language).exists()


def _clip_store_lost_race(*, voice: Voice, cache_key: str, fields: dict[str, Any]) -> Clip:
    # The row exists (an earlier synthesis, or another writer); its file and ours have the
    # same name, so updating the row is all that is left.
    Clip.objects.filter(owner_id=voice.owner_id, cache_key=cache_key).update(**fields)
    # Encoded copies of the old WAV (services/clip_formats.py) would be served as this clip: drop them (their
    # files go after the commit, voice_tts.receivers). Those of the same sound are kept.
    ClipEncoding.objects.filter(clip__owner_id=voice.owner_id, clip__cache_key=cache_key).exclude(
        source_sha256=fields["sha256"]
    ).delete()
    return Clip.objects.get(owner_id=voice.owner_id, cache_key=cache_key)


def clip_for_owner(*, owner_id: int, cache_key: str) -> Clip:
    clip = clip_lookup(owner_id=owner_id, cache_key=cache_key)
    if clip is None:
        raise ServiceError("not_found", "No such clip.")
    return clip


def clips_evict_over_quota(*, owner_id: int, keep_clip_id: int | None = None) -> int:
    """Delete the owner's least recently used unpinned clips beyond CLIP_QUOTA_PER_USER,
    never `keep_clip_id` (the clip a job just finished with).

    Files go with their rows (voice_tts.receivers). Returns how many were evicted.
    """
    quota = settings.CLIP_QUOTA_PER_USER
    total = Clip.objects.filter(owner_id=owner_id).count()
    if total <= quota:
        return 0
    clip_uses_flush()  # least recently used by the latest counts, not the last flush's
    # Never-replayed clips count from their creation; replayed ones from the last replay.
    victims = list(
        Clip.objects.filter(owner_id=owner_id, pinned=False)
        .exclude(id=keep_clip_id)
        .annotate(recency=Coalesce("last_accessed_at", "created_at"))
        .order_by("recency", "id")
        .values_list("id", flat=True)[: total - quota]
    )
    for clip in Clip.objects.filter(id__in=victims):
        clip.delete()
    return len(victims)
