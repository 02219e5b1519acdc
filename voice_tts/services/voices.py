"""Enrolling and removing a caregiver's voice."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from voice_tts.dispatch import reminders_pregenerate_send
from voice_tts.errors import ServiceError
from voice_tts.models import Voice
from voice_tts.security_log import security_event
from voice_tts.services.job_text import SUPPORTED_LANGUAGES
from voice_tts.services.reference_audio import reference_clip_normalise

_TRANSCRIPT_MAX_CHARS = 500


def voice_create(*, owner_id: int, data: bytes, transcript: str = "", language: str = "ko") -> Voice:
    """Validate and normalise the sample, store it, and make it the owner's active voice."""
    if len(data) > settings.VOICE_MAX_UPLOAD_BYTES:
        raise ServiceError(
            "file_too_large",
            f"The file is {len(data)} bytes; at most {settings.VOICE_MAX_UPLOAD_BYTES} are accepted.",
            status=413,
        )
    if language not in SUPPORTED_LANGUAGES:
        raise ServiceError("unsupported_language", f"language must be one of {', '.join(SUPPORTED_LANGUAGES)}.")
    transcript = " ".join(transcript.split())
    if len(transcript) > _TRANSCRIPT_MAX_CHARS:
        raise ServiceError(
            "transcript_too_long", f"The transcript may have at most {_TRANSCRIPT_MAX_CHARS} characters."
        )
    clip = reference_clip_normalise(data=data)

    voice_id = uuid.uuid4()
    # The name is ours, never the uploader's: no traversal, no collisions.
    name = default_storage.save(f"voices/{owner_id}/{voice_id}.wav", ContentFile(clip.wav_bytes()))
    try:
        with transaction.atomic():
            Voice.objects.select_for_update().filter(owner_id=owner_id, is_active=True).update(is_active=False)
            voice = Voice.objects.create(
                id=voice_id,
                owner_id=owner_id,
                audio=name,
                duration_seconds=clip.duration_seconds,
                sample_rate=clip.sample_rate,
                transcript=transcript,
                language=language,
                is_active=True,
            )
    except BaseException:
        # No row, no file: the row is the source of truth.
        default_storage.delete(name)
        raise
    # The owner's cached active voice is invalidated by the new row's post_save (voice_tts/receivers.py).
    # A new voice changes every cache key: re-make this owner's reminders in the background.
    transaction.on_commit(lambda: reminders_pregenerate_send(owner_id=owner_id))
    return voice


def _reference_cache_path(voice_id: Any) -> Path:
    return Path(settings.DATA_DIR) / "reference-cache" / f"{voice_id}.wav"


def voice_reference_path(*, voice: Voice) -> Path:
    """A local file path of the voice's reference clip, for engines that read files.

    On local storage that is the stored file itself. On remote storage (S3) the clip is
    copied once into a per-host cache; engines may keep derived files (analysis
    sidecars) next to it, named `<path>.*`, and voice_delete removes those too.
    """
    try:
        return Path(default_storage.path(voice.audio.name))
    except NotImplementedError:
        pass
    local = _reference_cache_path(voice.id)
    if not local.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out, default_storage.open(voice.audio.name, "rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(tmp, local)
    return local


def _local_derivatives(path: Path) -> list[Path]:
    return [p for p in path.parent.glob(glob.escape(path.name) + "*") if p.is_file()]


def voice_files_remove(*, voice_id: Any, audio_name: str) -> None:
    """Remove the stored reference and every local file derived from it (analysis
    sidecars, the remote-storage copy). Called once the row is gone."""
    local_paths = [_reference_cache_path(voice_id)]
    try:
        local_paths.append(Path(default_storage.path(audio_name)))
    except NotImplementedError:
        pass
    if audio_name:
        default_storage.delete(audio_name)
    for path in local_paths:
        for derived in _local_derivatives(path):
            derived.unlink(missing_ok=True)


def voice_delete(*, voice: Voice) -> None:
    """Delete the voice and its clips; their files follow on commit (voice_tts.receivers),
    also when the rows go by cascade (a deleted user)."""
    voice_id = voice.id  # delete() clears it
    with transaction.atomic():
        voice.delete()
    security_event("voice_deleted", user_id=voice.owner_id, voice_id=str(voice_id))
