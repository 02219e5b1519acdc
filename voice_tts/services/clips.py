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
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections
from django.db.models.functions import Coalesce
from django.utils import timezone

from voice_tts.errors import ServiceError
from voice_tts.models import Clip, Voice
from voice_tts.prepared_sql import PreparedQuery

CACHE_KEY_VERSION = 1


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


_clip_hit_query = PreparedQuery(
    lambda owner_id, cache_key: Clip.objects.filter(owner_id=owner_id, cache_key=cache_key)
    .order_by()
    .values("id", "duration_seconds")[:1],
    owner_id=Clip._meta.get_field("owner"),
    cache_key=Clip._meta.get_field("cache_key"),
)


def clip_hit(*, owner_id: int, cache_key: str) -> Clip | None:
    """The clip for a cache key with only what a cache-hit answer needs (id, duration):
    the lookup every job request makes, compiled once (voice_tts/prepared_sql.py)."""
    row = _clip_hit_query.first(owner_id=owner_id, cache_key=cache_key)
    if row is None:
        return None
    return Clip.from_db(DEFAULT_DB_ALIAS, ["id", "duration_seconds"], [row["id"], row["duration_seconds"]])


def clip_touch_statement(*, clip: Clip, connection: Any) -> tuple[str, list[Any]]:
    """The UPDATE that counts a use of the clip and marks it recent (LRU eviction orders by
    last_accessed_at). Hand-built, not a compiled QuerySet: it runs on every cache hit."""
    quote = connection.ops.quote_name
    meta = Clip._meta
    count, last = quote(meta.get_field("access_count").column), meta.get_field("last_accessed_at")
    # Identifiers from the model's meta, values bound as parameters.
    sql = (f"UPDATE {quote(meta.db_table)} SET {count} = {count} + 1, {quote(last.column)} = %s "  # noqa: S608
           f"WHERE {quote(meta.pk.column)} = %s")
    now = last.get_db_prep_save(timezone.now(), connection)
    return sql, [now, meta.pk.get_db_prep_value(clip.pk, connection)]


def clip_touch(*, clip: Clip) -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(*clip_touch_statement(clip=clip, connection=connection))


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
) -> Clip:
    """Write the WAV (temp + rename), then the row. Safe to call twice for one key."""
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
    # Usually there is no row yet (the worker holds the clip's lock and just missed the cache):
    # one INSERT. A row that is already there (a `use_cache: false` job re-synthesising, or a
    # writer without the lock) makes it an UPDATE of that row; the file has the same name.
    try:
        return Clip.objects.create(owner_id=voice.owner_id, cache_key=cache_key, **fields)
    except IntegrityError:
        return _clip_store_lost_race(voice=voice, cache_key=cache_key, fields=fields)
    except DatabaseError:
        if not Clip.objects.filter(owner_id=voice.owner_id, cache_key=cache_key).exists():
            # No row will ever name this file: remove it rather than leave an orphan.
            default_storage.delete(name)
        raise


def _clip_store_lost_race(*, voice: Voice, cache_key: str, fields: dict[str, Any]) -> Clip:
    # The row exists (an earlier synthesis, or another writer); its file and ours have the
    # same name, so updating the row is all that is left.
    Clip.objects.filter(owner_id=voice.owner_id, cache_key=cache_key).update(**fields)
    return Clip.objects.get(owner_id=voice.owner_id, cache_key=cache_key)


def clip_for_owner(*, owner_id: int, cache_key: str) -> Clip:
    clip = clip_lookup(owner_id=owner_id, cache_key=cache_key)
    if clip is None:
        raise ServiceError("not_found", "No such clip.", status=404)
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
