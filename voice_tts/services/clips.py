"""The clip cache: keys, lookups, and storing a synthesised clip exactly once."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
import soundfile
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError
from django.db.models import F
from django.utils import timezone

from voice_tts.errors import ServiceError
from voice_tts.models import Clip, Voice

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


def clip_touch(*, clip: Clip) -> None:
    Clip.objects.filter(pk=clip.pk).update(access_count=F("access_count") + 1, last_accessed_at=timezone.now())


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
    try:
        clip, _ = Clip.objects.update_or_create(owner_id=voice.owner_id, cache_key=cache_key, defaults=fields)
    except IntegrityError:
        # Another writer created the row between our SELECT and INSERT; its file and
        # ours are the same name, so updating the winner's row is all that is left.
        Clip.objects.filter(owner_id=voice.owner_id, cache_key=cache_key).update(**fields)
        clip = Clip.objects.get(owner_id=voice.owner_id, cache_key=cache_key)
    return clip


def clip_for_owner(*, owner_id: int, cache_key: str) -> Clip:
    clip = clip_lookup(owner_id=owner_id, cache_key=cache_key)
    if clip is None:
        raise ServiceError("not_found", "No such clip.", status=404)
    return clip
