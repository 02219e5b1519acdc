"""Enrolling and removing a caregiver's voice."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet

from voice_tts.dispatch import reminders_pregenerate_send, voice_adapt_slice_send
from voice_tts.errors import ServiceError
from voice_tts.models import Voice
from voice_tts.security_log import security_event
from voice_tts.services.job_text import SUPPORTED_LANGUAGES
from voice_tts.services.reference_audio import reference_clip_normalise

_TRANSCRIPT_MAX_CHARS = 500


def voices_of(*, owner_id: int) -> QuerySet[Voice]:
    """The owner's voices (never another user's)."""
    return Voice.objects.filter(owner_id=owner_id)


def voice_get(*, owner_id: int, voice_id: Any) -> Voice:
    """The owner's voice; `not_found` for another user's too (existence is not revealed)."""
    voice = Voice.objects.filter(id=voice_id, owner_id=owner_id).first()
    if voice is None:
        raise ServiceError("not_found", "Not found.")
    return voice


def voice_create(*, owner_id: int, data: bytes, transcript: str = "", language: str = "ko") -> Voice:
    """Validate and normalise the sample, store it, and make it the owner's active voice."""
    if len(data) > settings.VOICE_MAX_UPLOAD_BYTES:
        raise ServiceError(
            "file_too_large",
            f"The file is {len(data)} bytes; at most {settings.VOICE_MAX_UPLOAD_BYTES} are accepted.",
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
                adaptation_state=_adaptation_initial_state(),
            )
    except BaseException:
        # No row, no file: the row is the source of truth.
        default_storage.delete(name)
        raise
    # The owner's cached active voice is invalidated by the new row's post_save (voice_tts/receivers.py).
    # A new voice changes every cache key: re-make this owner's reminders in the background.
    transaction.on_commit(lambda: reminders_pregenerate_send(owner_id=owner_id))
    if voice.adaptation_state == "pending":
        # The voice speaks at once with today's matching; its own style is searched in the background.
        transaction.on_commit(lambda: voice_adapt_slice_send(voice_id=voice_id))
    return voice


def _adaptation_initial_state() -> str:
    # Pending where the engine has a style space to search (neural_cpu); see services/voice_adaptation.py.
    if settings.TTS_ENGINE == "neural_cpu" and settings.VOICE_ADAPT_ENABLED:
        return "pending"
    return "not_applicable"


_REFERENCE_TMP_PREFIX = ".tmp-"


def _reference_cache_dir() -> Path:
    return Path(settings.DATA_DIR) / "reference-cache"


def _reference_cache_path(voice_id: Any, suffix: str = "") -> Path:
    return _reference_cache_dir() / f"{voice_id}.wav{suffix}"


def voice_reference_path(*, voice: Voice) -> Path:
    """A local file path of the voice's reference clip, for engines that read files.

    On local storage that is the stored file itself (MEDIA_ROOT is one disk for every host). On
    remote storage (S3) the clip is copied once into this host's own cache, <DATA_DIR>/reference-
    cache; engines may keep derived files (analysis sidecars) next to it, named `<path>.*`. The
    copy of a deleted voice is removed by voice_reference_cache_prune on each host that has one.
    """
    return voice_file_local(voice_id=voice.id, name=voice.audio.name)


def voice_file_local(*, voice_id: Any, name: str, suffix: str = "") -> Path:
    """A local path of the stored file `name` (the voice's reference, or with a `suffix` a file derived from
    it): the file itself on local storage; on remote storage a copy in this host's reference cache, made once,
    named `<voice id>.wav<suffix>`, so that the prune removes it with the voice's other files."""
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:
        pass
    local = _reference_cache_path(voice_id, suffix)
    if not local.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        # Copied under a temp name and renamed: an engine never reads half a copy, and a worker
        # killed mid-copy leaves only a temp file, which the prune removes once it is old.
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=_REFERENCE_TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out, default_storage.open(name, "rb") as src:
                shutil.copyfileobj(src, out)
            os.replace(tmp, local)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return local


def voice_reference_cache_prune(*, older_than_seconds: float) -> int:
    """Remove this host's reference copies of voices that no longer exist, with their derived files
    (sidecars), and temp files older than `older_than_seconds` (copies cut short); returns how many
    files went. Run by every synthesis worker process (voice_tts/worker/signals.py): the web that
    deletes a voice removes its objects from the bucket, but a copy on a GPU worker's disk can only
    be removed by that worker."""
    folder = _reference_cache_dir()
    if not folder.is_dir():
        return 0
    # Listed before the voices are read: a copy made after this listing is never judged on it.
    files = [path for path in folder.iterdir() if path.is_file()]
    named = {path: _reference_cache_voice_id(path) for path in files}
    wanted = {voice_id for voice_id in named.values() if voice_id is not None}
    alive = {str(voice_id) for voice_id in Voice.objects.filter(id__in=wanted).values_list("id", flat=True)}
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path, voice_id in named.items():
        is_temp = path.name.startswith(_REFERENCE_TMP_PREFIX) or path.name.endswith(".tmp")
        try:
            if voice_id is not None and voice_id not in alive:
                path.unlink()
            elif is_temp and path.stat().st_mtime < cutoff:
                path.unlink()
            else:
                continue
        except FileNotFoundError:
            continue  # renamed into place or removed by another process meanwhile
        removed += 1
    return removed


def _reference_cache_voice_id(path: Path) -> str | None:
    # `<voice id>.wav` and what engines derive from it (`<voice id>.wav.analysis.json`, and their
    # temp files); anything else is a copy in progress or not ours.
    try:
        return str(uuid.UUID(path.name.split(".", 1)[0]))
    except ValueError:
        return None


def _local_derivatives(path: Path) -> list[Path]:
    return [p for p in path.parent.glob(glob.escape(path.name) + "*") if p.is_file()]


def voice_files_remove(*, voice_id: Any, audio_name: str) -> None:
    """Remove the stored reference and every local file derived from it (analysis sidecars,
    this host's remote-storage copy; other hosts' copies go with their next
    voice_reference_cache_prune). Called once the row is gone."""
    local_paths = [_reference_cache_path(voice_id)]
    try:
        local_paths.append(Path(default_storage.path(audio_name)))
    except NotImplementedError:
        pass
    if audio_name:
        default_storage.delete(audio_name)
        _stored_derivatives_remove(audio_name=audio_name)
    for path in local_paths:
        for derived in _local_derivatives(path):
            derived.unlink(missing_ok=True)


def _stored_derivatives_remove(*, audio_name: str) -> None:
    """The stored files named after the reference (`<audio>.style-*`, `<audio>.adapt-*`: the voice's
    own style table and its search state), found by listing, on local disk and on S3 alike: a
    search slice may have stored a newer state than the deleted row named."""
    folder, _, base = audio_name.rpartition("/")
    try:
        _dirs, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for file_name in files:
        if file_name.startswith(base + "."):
            default_storage.delete(f"{folder}/{file_name}" if folder else file_name)


def voice_delete(*, voice: Voice) -> None:
    """Delete the voice and its clips; their files follow on commit (voice_tts.receivers),
    also when the rows go by cascade (a deleted user)."""
    voice_id = voice.id  # delete() clears it
    with transaction.atomic():
        voice.delete()
    security_event("voice_deleted", user_id=voice.owner_id, voice_id=str(voice_id))
