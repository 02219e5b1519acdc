"""The clip formats an owner's devices ask for, and storing a new clip in them as the worker makes it.

A Pi asks its bundle in one format (`GET /api/tts/phrases/bundle/?format=opus`); the bundle's view records it on
the device's token row (`AccessToken.audio_format`, the truth). When the worker has synthesised a clip and finished
its job, it stores the clip in each format the owner's devices asked for (services/clip_formats.py: encoded once,
temp name then rename, one ClipEncoding row) before it takes another job: a bundle fetched after that finds every
entry's encoding and encodes nothing. After the finish, not before: a /v1 stream waiting for the clip would
otherwise wait for the encodings too (Opus: about 35 ms per second of speech on a 2-core box). A bundle fetched
in that window makes what is missing itself; the two encodings of one clip meet in clip_formats' unique row.

Recording costs the bundle no SQL in the steady state: a Redis marker per device holds the format last recorded,
and the row is read (and written, only if the format changed) when the marker is missing or differs. The marker
is a cache of the row, never the truth: without Redis the row is updated conditionally on every fetch.
"""

from __future__ import annotations

import logging

import soundfile

from voice_tts.audio_codec import AUDIO_FORMATS
from voice_tts.errors import ServiceError
from voice_tts.models import AccessToken, Clip
from voice_tts.redis_client import REDIS_ERRORS, redis_client, redis_key
from voice_tts.services.clip_formats import CLIP_AUDIO_DEFAULT, clip_audio_encoded, clip_format_check

logger = logging.getLogger(__name__)

# Only a bound on memory: a marker that expires is refilled from the row by the next fetch.
_MARKER_SECONDS = 24 * 3600


def _marker_key(device_id: int) -> str:
    return redis_key("device", "format", str(device_id))


def device_audio_format_record(*, device_id: int, audio_format: str) -> bool:
    """Record that this device (an AccessToken id) asks for `audio_format`; True if the row changed."""
    clip_format_check(audio_format=audio_format)
    marker = _marker_key(device_id)
    client = redis_client()
    try:
        known = client.get(marker)
    except REDIS_ERRORS:
        # No marker to trust: a conditional UPDATE (a write only if the format changed).
        return bool(AccessToken.objects.filter(id=device_id).exclude(audio_format=audio_format)
                    .update(audio_format=audio_format))
    if known is not None and known.decode() == audio_format:
        return False
    stored = AccessToken.objects.filter(id=device_id).values_list("audio_format", flat=True).first()
    if stored is None:  # revoked meanwhile
        return False
    changed = stored != audio_format and bool(
        AccessToken.objects.filter(id=device_id).exclude(audio_format=audio_format).update(audio_format=audio_format))
    try:
        client.set(marker, audio_format, ex=_MARKER_SECONDS)
    except REDIS_ERRORS:
        logger.warning("device format marker not kept for device %s", device_id, exc_info=True)
    return changed


def owner_device_formats(*, owner_id: int) -> list[str]:
    """The encoded formats (not the WAV, which every clip has) that the owner's devices ask for, sorted."""
    formats = (AccessToken.objects.filter(owner_id=owner_id).exclude(device_name="")
               .exclude(audio_format=CLIP_AUDIO_DEFAULT).values_list("audio_format", flat=True).distinct())
    return sorted(name for name in set(formats) if name in AUDIO_FORMATS)


# What encoding one clip can raise that is the encoding's own failure (the WAV gone or unreadable, a rate or a
# file the codec refuses, storage refusing the write); the job that made the clip succeeds all the same.
_ENCODING_ERRORS = (ServiceError, ValueError, OSError, soundfile.LibsndfileError)


def clip_encodings_for_devices(*, clip: Clip) -> list[str]:
    """Store `clip` in every format its owner's devices ask for (made once: an existing encoding is kept).

    Returns the formats now stored. A format that fails is logged and skipped: the bundle will make it on demand,
    as it did before the worker made them. Call it outside any transaction (it writes files)."""
    done = []
    for audio_format in owner_device_formats(owner_id=clip.owner_id):
        try:
            clip_audio_encoded(clip=clip, audio_format=audio_format)
        except _ENCODING_ERRORS as exc:
            logger.warning("clip %s not stored in %s for the owner's devices: %s", clip.id, audio_format, exc)
            continue
        done.append(audio_format)
    return done
