"""A clip's audio in the format a client asks for: the stored WAV, or FLAC/Opus/MP3 encoded once and kept.

An encoding is made by the worker as it stores a clip, in the formats the owner's devices ask for
(services/device_formats.py), else on the first request for it (voice_tts.audio_codec, from the clip's WAV),
saved beside the WAV through default_storage (local: temp file + rename; S3: one PUT), and recorded as a
ClipEncoding row, which is the source of truth for its name, sha256 and size. Later requests serve the stored file.

- Names are content-addressed: `clips/<owner>/<cache_key>.<sha256 of the encoded bytes, 16 hex>.<ext>`. Two
  requests encoding the same clip at once each write a complete file under their own bytes' name (Ogg Opus bytes
  differ run to run: a random stream serial), one row wins the unique (clip, audio_format) constraint, and the loser
  removes its file unless it is the winner's too (same bytes, same name).
- A clip re-synthesised under the same WAV name has a new sha256: an encoding whose `source_sha256` is not the
  clip's is stale; it is deleted (its file goes after the commit, voice_tts.receivers) and a fresh one made.
  clip_store (services/clips.py) also drops them when it rewrites a clip.
- An encoding goes with its clip: the row cascades, the file follows the row (receivers), for deletions, quota
  evictions and account removal alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from dataclasses import dataclass
from typing import Final

import soundfile
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from voice_tts.audio_codec import AUDIO_FORMATS, AudioFormat, audio_encode
from voice_tts.errors import ServiceError
from voice_tts.models import Clip, ClipEncoding
from voice_tts.services.phrases import PhraseBundle, phrase_bundle

# The formats of our own routes (job audio, clip audio, the bundle's entries). wav is the stored file itself.
CLIP_AUDIO_FORMATS: Final = ("wav", "flac", "opus", "mp3")
CLIP_AUDIO_DEFAULT: Final = "wav"


@dataclass(frozen=True)
class ClipAudio:
    """Where a clip's audio in one format is stored, and what identifies those bytes."""

    name: str  # default_storage name
    audio_format: AudioFormat
    sha256: str  # hex sha256 of the file at `name`
    size_bytes: int | None  # None for the WAV (not recorded on the clip row)

    @property
    def etag(self) -> str:
        """A strong ETag (quoted): the format and the bytes' hash, so every format has its own."""
        return f'"{self.audio_format.name}-{self.sha256[:32]}"'


def _missing() -> ServiceError:
    return ServiceError("audio_missing", "The audio file is missing from storage.")


def clip_format_check(*, audio_format: str) -> str:
    """`audio_format` if our routes serve it, else a 400 `invalid_format`."""
    if audio_format not in CLIP_AUDIO_FORMATS:
        shown = audio_format[:40].encode("ascii", "backslashreplace").decode("ascii")
        raise ServiceError(
            "invalid_format",
            f"Unknown audio format {shown!r}; use one of: {', '.join(CLIP_AUDIO_FORMATS)}.",
        )
    return audio_format


def clip_wav_checksum(*, clip: Clip) -> str:
    """The WAV's sha256: the row's, computed once (and saved) for clips stored before it was recorded.

    A missing file is a 410 `audio_missing`."""
    if clip.sha256:
        return clip.sha256
    digest = hashlib.sha256()
    try:
        with default_storage.open(clip.audio.name, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise _missing() from None
    clip.sha256 = digest.hexdigest()
    Clip.objects.filter(pk=clip.pk, sha256="").update(sha256=clip.sha256)
    return clip.sha256


def _from_encoding(encoding: ClipEncoding) -> ClipAudio:
    return ClipAudio(
        name=encoding.audio.name,
        audio_format=AUDIO_FORMATS[encoding.audio_format],
        sha256=encoding.sha256,
        size_bytes=encoding.size_bytes,
    )


def _wav_read(clip: Clip) -> bytes:
    try:
        with default_storage.open(clip.audio.name, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise _missing() from None


def _encoding_make(*, clip: Clip, audio_format: str) -> ClipAudio:
    wav = _wav_read(clip)
    # The hash of the bytes actually encoded: if the WAV was rewritten since the row was read, this is the new one.
    source_sha256 = hashlib.sha256(wav).hexdigest()
    try:
        samples, sample_rate = soundfile.read(io.BytesIO(wav), dtype="float32", always_2d=False)
    except soundfile.LibsndfileError:
        raise ServiceError("audio_unreadable", "The stored audio could not be read.") from None
    if samples.ndim == 2:  # clips are stored mono; an imported stereo WAV is mixed down
        samples = samples.mean(axis=1)
    data = audio_encode(samples=samples, sample_rate=sample_rate, audio_format=audio_format)
    digest = hashlib.sha256(data).hexdigest()
    extension = AUDIO_FORMATS[audio_format].extension
    name = default_storage.save(f"clips/{clip.owner_id}/{clip.cache_key}.{digest[:16]}.{extension}", ContentFile(data))
    try:
        with transaction.atomic():
            encoding = ClipEncoding.objects.create(
                clip_id=clip.id,
                audio_format=audio_format,
                audio=name,
                source_sha256=source_sha256,
                sha256=digest,
                size_bytes=len(data),
            )
    except IntegrityError:
        # Another request stored this format first (or the clip was deleted meanwhile: no row to point at).
        winner = ClipEncoding.objects.filter(clip_id=clip.id, audio_format=audio_format).first()
        if winner is None or winner.audio.name != name:
            default_storage.delete(name)
        if winner is None:
            raise ServiceError("not_found", "No such clip.") from None
        return _from_encoding(winner)
    return _from_encoding(encoding)


def _clip_audio(*, clip: Clip, audio_format: str, encoding: ClipEncoding | None) -> ClipAudio:
    wav_sha256 = clip_wav_checksum(clip=clip)
    if audio_format == "wav":
        return ClipAudio(name=clip.audio.name, audio_format=AUDIO_FORMATS["wav"], sha256=wav_sha256, size_bytes=None)
    if encoding is not None:
        if encoding.source_sha256 == wav_sha256:
            return _from_encoding(encoding)
        encoding.delete()  # made from an older WAV of this clip; its file goes after the commit (receivers)
    return _encoding_make(clip=clip, audio_format=audio_format)


def clip_audio_encoded(*, clip: Clip, audio_format: str) -> ClipAudio:
    """The clip's audio in `audio_format` (one of CLIP_AUDIO_FORMATS): the WAV itself, or the stored encoding,
    made now if there is none for the clip's current WAV. 410 `audio_missing` if the WAV is gone."""
    clip_format_check(audio_format=audio_format)
    encoding = None
    if audio_format != "wav":
        encoding = ClipEncoding.objects.filter(clip_id=clip.id, audio_format=audio_format).first()
    return _clip_audio(clip=clip, audio_format=audio_format, encoding=encoding)


def phrase_bundle_formatted(*, owner_id: int, audio_format: str) -> PhraseBundle:
    """The Pi's bundle (services.phrases.phrase_bundle) with each entry's audio in `audio_format`.

    wav: the bundle exactly as phrase_bundle makes it (same body, same ETag as before formats existed). Another
    format: each entry's `sha256` is that file's and `size_bytes` its size, and the bundle says `audio_format`
    (the API's URLs then ask for it). The encodings are made here if missing (once per clip), so the sha256 the
    Pi checks is the one it downloads. An entry whose WAV is missing turns `pending`, as in phrase_bundle.
    """
    clip_format_check(audio_format=audio_format)
    bundle = phrase_bundle(owner_id=owner_id)
    if audio_format == "wav":
        return bundle
    keys = {entry.cache_key for entry in bundle.entries if entry.cache_key}
    clips = {clip.cache_key: clip for clip in Clip.objects.filter(owner_id=owner_id, cache_key__in=keys)}
    encodings = {
        encoding.clip_id: encoding
        for encoding in ClipEncoding.objects.filter(clip__in=clips.values(), audio_format=audio_format)
    }
    entries = []
    for entry in bundle.entries:
        clip = clips.get(entry.cache_key or "")
        if clip is None:
            entries.append(entry)
            continue
        try:
            audio = _clip_audio(clip=clip, audio_format=audio_format, encoding=encodings.get(clip.id))
        except ServiceError as exc:
            if exc.code not in ("audio_missing", "not_found"):
                raise
            entries.append(dataclasses.replace(entry, status="pending", cache_key=None, sha256=None,
                                               duration_seconds=None))
            continue
        entries.append(dataclasses.replace(entry, sha256=audio.sha256, size_bytes=audio.size_bytes))
    return dataclasses.replace(bundle, entries=tuple(entries), audio_format=audio_format)
