"""A voice's own Kokoro style table, searched in the background after enrolment (issue 26).

The search (workers/voice_style) runs in slices: one task on the batch queue runs
VOICE_ADAPT_STEPS_PER_SLICE steps, stores the search state beside the reference and sends the next
slice, so interactive and reminder jobs never wait behind more than one slice. Each slice claims
the voice with a conditional UPDATE (state pending/running, no live claim); a rerun of a slice
whose claim is gone, or of a finished or deleted voice, is a no-op. A worker that dies mid-slice
leaves the last stored state: its claim expires and the next slice (the redelivered message, or
the sweep's) resumes from there, taking the same seeded steps again.

The voice speaks with today's matching until the table is done. A search in which no candidate won
every judge (workers/voice_style/search.py, walk-3) ends done with no table: today's matching was the
closest voice found, and nothing changes. Otherwise the table's hash is part
of every clip cache key (voice_style_key), and the owner's reminders are made again on the batch
queue, so the Pi picks up the closer voice at its next sync. A failure is stored on the voice
with a code; the voice keeps speaking with today's matching.

When a search finishes, the slice also speaks one short sentence twice, as the voice really
speaks: with today's matching ("before") and with the new table ("after"), and stores both as
16-bit WAV beside the reference (`<reference>.preview-<sha>-before.wav` / `-after.wav`, deleted
with the voice). The row names them, in the same UPDATE that marks the search done; a failed
preview is logged and leaves them empty, never failing the search.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from voice_tts.dispatch import reminders_pregenerate_send, voice_adapt_slice_send
from voice_tts.errors import ServiceError
from voice_tts.models import ADAPTATION_OUTCOMES, AdaptationState, Voice
from voice_tts.result_cache import owner_entries_invalidate
from voice_tts.services.voices import voice_file_local, voice_get, voice_reference_path
from voice_tts.worker import runtime
from workers.engines.base import STYLE_TABLE_PARAM, EngineError
from workers.engines.neural_cpu import SAMPLE_RATE, style_table_dumps
from workers.speech_text import text_normalise_for_speech
from workers.voice_match import VoiceMatchError, reference_analysis
from workers.voice_style import search
from workers.voice_style.asr import ProbeRecogniser
from workers.voice_style.encoder import SpeakerEncoder
from workers.voice_style.search import StyleSearchError

logger = logging.getLogger(__name__)

# The engine whose style space is searched; other engines' voices are not_applicable
# (voices.voice_create decides the first state by the same name).
ADAPTABLE_ENGINE = "neural_cpu"
# A search that needs far more slices than its budget is stuck (a slice that keeps dying).
_SLICE_SLACK = 5
# The "before and after" preview: one short reminder, spoken with today's matching and with the table.
PREVIEW_TEXT = "약 드실 시간입니다."
PREVIEW_LANGUAGE = "ko"
PREVIEW_SIDES = ("before", "after")
# Re-exported for the API's schema: "adapted" or "unchanged" (Voice.adaptation_outcome).
OUTCOMES = ADAPTATION_OUTCOMES


def voice_style_key(*, voice: Voice) -> str:
    """What the voice's own table adds to the clip cache key: its hash once done, else nothing."""
    if voice.adaptation_state == AdaptationState.DONE and voice.adaptation_style_sha:
        return voice.adaptation_style_sha
    return ""


def voice_style_key_of(*, voice_id: Any) -> str:
    row = Voice.objects.filter(id=voice_id).values_list("adaptation_state", "adaptation_style_sha").first()
    if row is None or row[0] != AdaptationState.DONE:
        return ""
    return row[1] or ""


def voice_style_local_path(*, voice: Voice) -> Path | None:
    """A local file of the voice's finished table for the engine, or None while it has none.

    On local storage the stored file itself; on S3 a copy in this host's reference cache, named
    like the reference's other derived files, so the cache prune removes it with the voice.
    """
    name = voice.adaptation_style
    if voice.adaptation_state != AdaptationState.DONE or not name:
        return None
    return voice_file_local(voice_id=voice.id, name=name, suffix=f".style-{voice.adaptation_style_sha[:16]}.npz")


def _fail(*, voice_id: Any, claim: str, code: str) -> None:
    logger.warning("voice %s: style adaptation failed: %s", voice_id, code)
    row = Voice.objects.filter(id=voice_id, adaptation_claim=claim).values_list("adaptation_state_file").first()
    updated = Voice.objects.filter(id=voice_id, adaptation_claim=claim).update(
        adaptation_state=AdaptationState.FAILED, adaptation_error_code=code[:64], adaptation_claim="",
        adaptation_claimed_until=None, adaptation_state_file="",
    )
    if updated and row and row[0]:
        default_storage.delete(row[0])


def _claim(*, voice_id: Any) -> str | None:
    now = timezone.now()
    claim = str(uuid.uuid4())
    until = now + dt.timedelta(seconds=settings.VOICE_ADAPT_SLICE_HARD_SECONDS + 30)
    updated = (
        Voice.objects.filter(id=voice_id, adaptation_state__in=[AdaptationState.PENDING, AdaptationState.RUNNING])
        .filter(Q(adaptation_claimed_until__isnull=True) | Q(adaptation_claimed_until__lt=now))
        .update(adaptation_state=AdaptationState.RUNNING, adaptation_claim=claim, adaptation_claimed_until=until,
                adaptation_slices=F("adaptation_slices") + 1, adaptation_touched_at=now)
    )
    return claim if updated else None


def _store(*, name: str, data: bytes) -> str:
    return default_storage.save(name, ContentFile(data))


def voice_adaptation_slice(*, voice_id: Any) -> str:
    """Run one slice of the voice's search; returns what happened (for logs and tests):
    "skipped" (no claim: finished, failed, deleted or held by a live slice), "continued", "done",
    "failed" or "not_applicable"."""
    claim = _claim(voice_id=voice_id)
    if claim is None:
        return "skipped"
    voice = Voice.objects.get(id=voice_id)
    steps_total = settings.VOICE_ADAPT_STEPS
    if voice.adaptation_slices > -(-steps_total // settings.VOICE_ADAPT_STEPS_PER_SLICE) + _SLICE_SLACK:
        _fail(voice_id=voice_id, claim=claim, code="too_many_slices")
        return "failed"
    try:
        engine = runtime.engine_get()
    except EngineError as exc:
        _fail(voice_id=voice_id, claim=claim, code=exc.code)
        return "failed"
    if engine.name != ADAPTABLE_ENGINE:
        Voice.objects.filter(id=voice_id, adaptation_claim=claim).update(
            adaptation_state=AdaptationState.NOT_APPLICABLE, adaptation_claim="", adaptation_claimed_until=None)
        return "not_applicable"
    started = time.monotonic()
    old_state_file = voice.adaptation_state_file
    try:
        encoder, hearer = _encoder(), _hearer()
        reference = voice_reference_path(voice=voice)
        analysis = reference_analysis(reference)
        # Candidates are scored as the listener will hear them: through the engine's matching.
        post = search.matching_post(engine=engine, reference=analysis, sample_rate=SAMPLE_RATE)
        if old_state_file:
            with default_storage.open(old_state_file, "rb") as fh:
                state = search.style_search_loads(fh.read())
        else:
            samples, rate = soundfile.read(str(reference), dtype="float32", always_2d=False)
            start_voice = engine.voice_for_reference(analysis)
            # Seeded by the voice: a rerun takes the same steps; two voices never share a walk.
            seed = int(hashlib.sha256(str(voice.id).encode()).hexdigest()[:8], 16)
            state = search.style_search_start(
                engine=engine, encoder=encoder, start_voice=start_voice, stock_voices=engine.candidate_voices,
                reference=np.asarray(samples), reference_rate=int(rate), steps_total=steps_total, seed=seed,
                sample_rate=SAMPLE_RATE, post=post, hearer=hearer,
            )
        for _ in range(settings.VOICE_ADAPT_STEPS_PER_SLICE):
            if search.style_search_done(state):
                break
            search.style_search_step(engine=engine, encoder=encoder, state=state, sample_rate=SAMPLE_RATE,
                                     post=post, hearer=hearer)
        summary = {**search.style_search_summary(state),
                   "seconds": round(float(voice.adaptation_summary.get("seconds", 0.0))
                                    + time.monotonic() - started, 1)}
        if search.style_search_done(state) and int(state["accepted"]) > 0:
            style, analysis = search.style_search_result(engine=engine, state=state, sample_rate=SAMPLE_RATE)
            data = style_table_dumps(style=style, analysis=analysis)
    except StyleSearchError as exc:
        _fail(voice_id=voice_id, claim=claim, code=exc.code)
        return "failed"
    except VoiceMatchError:
        _fail(voice_id=voice_id, claim=claim, code="reference_unusable")
        return "failed"
    except EngineError as exc:
        _fail(voice_id=voice_id, claim=claim, code=exc.code)
        return "failed"

    if search.style_search_done(state) and int(state["accepted"]) == 0:
        # No candidate all the judges agreed on: today's matching is the closest voice found. The voice
        # keeps it: no table, the same cache keys, no reminders made again, no preview of a non-change.
        updated = Voice.objects.filter(id=voice_id, adaptation_claim=claim).update(
            adaptation_state=AdaptationState.DONE, adaptation_progress=1.0, adaptation_style="",
            adaptation_style_sha="", adaptation_state_file="", adaptation_claim="", adaptation_claimed_until=None,
            adaptation_error_code="", adaptation_summary=summary,
        )
        if not updated:
            return "skipped"
        if old_state_file:
            default_storage.delete(old_state_file)
        logger.info("voice %s: style search kept today's matching: %s", voice_id, summary)
        return "done"

    if search.style_search_done(state):
        sha = hashlib.sha256(data).hexdigest()
        name = _store(name=f"{voice.audio.name}.style-{sha[:16]}.npz", data=data)
        # Rendered here, outside any transaction: two syntheses, a few seconds.
        previews = _previews_render(engine=engine, voice=voice, style_name=name, style_sha=sha)
        with transaction.atomic():
            updated = Voice.objects.filter(id=voice_id, adaptation_claim=claim).update(
                adaptation_state=AdaptationState.DONE, adaptation_progress=1.0, adaptation_style=name,
                adaptation_style_sha=sha, adaptation_state_file="", adaptation_claim="",
                adaptation_claimed_until=None, adaptation_error_code="", adaptation_summary=summary,
                adaptation_preview_before=previews.get("before", ""),
                adaptation_preview_after=previews.get("after", ""),
            )
            if updated:
                # New cache keys for this owner's clips: forget the cached ones, re-make the reminders.
                owner_id = voice.owner_id
                transaction.on_commit(lambda: owner_entries_invalidate(owner_id=owner_id))
                transaction.on_commit(lambda: reminders_pregenerate_send(owner_id=owner_id))
        if not updated:
            # Deleted (or its claim lost) meanwhile: what this slice wrote must not outlive it.
            for written in (name, *previews.values()):
                default_storage.delete(written)
            return "skipped"
        if old_state_file:
            default_storage.delete(old_state_file)
        logger.info("voice %s: style adapted: %s", voice_id, summary)
        return "done"

    step = int(state["step"])
    name = _store(name=f"{voice.audio.name}.adapt-{step:05d}.npz", data=search.style_search_dumps(state))
    with transaction.atomic():
        updated = Voice.objects.filter(id=voice_id, adaptation_claim=claim).update(
            adaptation_state_file=name, adaptation_progress=round(search.style_search_progress(state), 3),
            adaptation_claim="", adaptation_claimed_until=None, adaptation_summary=summary,
            adaptation_touched_at=timezone.now(),
        )
        if updated:
            transaction.on_commit(lambda: voice_adapt_slice_send(voice_id=voice_id))
    if not updated:
        if name != old_state_file:
            default_storage.delete(name)
        return "skipped"
    if old_state_file and old_state_file != name:
        default_storage.delete(old_state_file)
    return "continued"


def _wav_bytes(samples: Any, rate: int) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0), int(rate), format="WAV",
                    subtype="PCM_16")
    return buf.getvalue()


def _previews_render(*, engine: Any, voice: Voice, style_name: str, style_sha: str) -> dict[str, str]:
    """Speak PREVIEW_TEXT as the voice speaks in a job, without and with its new table (services/jobs.py
    passes the table the same way), and store both WAVs beside the reference. Returns their storage
    names by side, or {} when either render failed: logged, the files written removed, the search
    unharmed (a preview is a nicety; the table is the result)."""
    stored: dict[str, str] = {}
    try:
        reference = voice_reference_path(voice=voice)
        table = voice_file_local(voice_id=voice.id, name=style_name, suffix=f".style-{style_sha[:16]}.npz")
        spoken = text_normalise_for_speech(PREVIEW_TEXT, PREVIEW_LANGUAGE)
        for side, params in (("before", {}), ("after", {STYLE_TABLE_PARAM: str(table)})):
            samples, rate = engine.synthesize(spoken, PREVIEW_LANGUAGE, reference, voice.transcript or None, params)
            if len(samples) == 0 or rate <= 0:
                raise EngineError("engine_failed", "the engine returned no audio")
            data = _wav_bytes(samples, rate)
            digest = hashlib.sha256(data).hexdigest()
            stored[side] = _store(name=f"{voice.audio.name}.preview-{digest[:16]}-{side}.wav", data=data)
    except (EngineError, VoiceMatchError, OSError, RuntimeError, ValueError):
        # A preview is a nicety: whatever the engine or storage raised, the search's result stands.
        logger.exception("voice %s: the before/after preview could not be made", voice.id)
        for written in stored.values():
            default_storage.delete(written)
        return {}
    return stored


@dataclass(frozen=True)
class AdaptationPreview:
    """One side of a voice's before/after preview: its stored WAV, a download name and a tag of its bytes
    (the name holds their hash, and a stored preview is never rewritten)."""

    name: str
    filename: str
    etag: str


def voice_adaptation_previews(*, voice: Voice) -> dict[str, str] | None:
    """The stored names of the voice's preview by side ({"before": ..., "after": ...}), or None while it has
    none (search not done, a voice of another engine, or a preview that failed)."""
    if voice.adaptation_state != AdaptationState.DONE:
        return None
    names = dict(zip(PREVIEW_SIDES, (voice.adaptation_preview_before, voice.adaptation_preview_after), strict=True))
    return names if all(names.values()) else None


def voice_adaptation_preview_get(*, owner_id: int, voice_id: Any, side: str) -> AdaptationPreview:
    """One side ("before" or "after") of the owner's voice's preview. Another user's voice is `not_found`,
    as a missing one; a voice without a preview (or an unknown side) is `preview_not_found`."""
    voice = voice_get(owner_id=owner_id, voice_id=voice_id)
    names = voice_adaptation_previews(voice=voice)
    if names is None or side not in names:
        raise ServiceError("preview_not_found", "This voice has no before-and-after preview.")
    name = names[side]
    return AdaptationPreview(name=name, filename=f"voice-{voice.id}-{side}.wav",
                             etag='"' + hashlib.sha256(name.encode()).hexdigest()[:32] + '"')


def voice_adaptations_resend() -> int:
    """Resend a slice for every search silent for VOICE_ADAPT_RESEND_SECONDS (no live claim, nothing
    sent or stored): its message was lost. Run by the sweep; the touch first, so a sweep that runs
    again soon never sends twice, and a duplicate message is a no-op anyway (the claim)."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.VOICE_ADAPT_RESEND_SECONDS)
    candidates = (
        Voice.objects.filter(adaptation_state__in=[AdaptationState.PENDING, AdaptationState.RUNNING])
        .filter(Q(adaptation_claimed_until__isnull=True) | Q(adaptation_claimed_until__lt=now))
        .filter(Q(adaptation_touched_at__lt=stale) | Q(adaptation_touched_at__isnull=True, created_at__lt=stale))
    )
    sent = 0
    for voice_id in list(candidates.values_list("id", flat=True)[:100]):
        touched = candidates.filter(id=voice_id).update(adaptation_touched_at=now)
        if touched and voice_adapt_slice_send(voice_id=voice_id):
            sent += 1
    return sent


def voice_adaptation_timed_out(*, voice_id: Any) -> None:
    """A slice ran past its soft limit: the voice keeps today's matching, the search stops."""
    row = Voice.objects.filter(id=voice_id, adaptation_state=AdaptationState.RUNNING).values_list(
        "adaptation_claim").first()
    if row and row[0]:
        _fail(voice_id=voice_id, claim=row[0], code="slice_timeout")


_ENCODER: Any = None
_HEARER: Any = None


def _encoder() -> Any:
    # One encoder per worker process, loaded at its first slice (12 MB, ~0.1 s; onnxruntime is imported then).
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = SpeakerEncoder(threads=1)
    return _ENCODER


def _hearer() -> Any:
    # One Whisper-base per worker process, loaded at its first slice (~150 MB, ~1-2 s).
    global _HEARER
    if _HEARER is None:
        _HEARER = ProbeRecogniser(threads=1)
    return _HEARER
