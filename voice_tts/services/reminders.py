"""Batch pre-generation: every active phrase has a clip before the Pi needs it.

Idempotent by construction: for each phrase we compute the cache key the worker would
use and enqueue a job only when there is neither a clip for that key nor a job for the
same text already in flight. A rerun (or a second beat firing) enqueues nothing new.

Jobs go through `job_create` (the normal job path: same normalisation, cache key and
per-clip lock in the worker) but to the batch queue, which synthesis workers consume
only after the interactive one (see settings.SYNTHESIS_BATCH_QUEUE). Owners are
processed in order of their voice, so one voice's phrases sit next to each other in
the queue and the worker keeps that reference loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import redis
from django.conf import settings

from voice_tts.dispatch import reminders_pregenerate_send
from voice_tts.errors import ServiceError
from voice_tts.models import AdaptationState, Clip, Job, ReminderPhrase, Voice
from voice_tts.redis_client import redis_client, redis_key
from voice_tts.services.clips import PHRASE_PARAMS, clip_cache_key
from voice_tts.services.jobs import ClipHit, job_create
from voice_tts.worker.status import engine_version_current

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class PregenerateSummary:
    phrases: int = 0
    enqueued: int = 0
    cached: int = 0
    in_flight: int = 0
    no_voice: int = 0
    failed: int = 0
    dry_run: bool = False
    model_version: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        verb = "would enqueue" if self.dry_run else "enqueued"
        return (f"{self.phrases} phrases: {verb} {self.enqueued}, already cached {self.cached}, "
                f"in flight {self.in_flight}, no voice {self.no_voice}, failed {self.failed}")


def _batches(items: Sequence[int], size: int) -> list[Sequence[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def reminders_pregenerate(
    *,
    owner_ids: Sequence[int] | None = None,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> PregenerateSummary:
    """Enqueue a batch job for every active phrase whose clip is missing.

    `owner_ids=None` means every user. Without a known model version (no worker has
    loaded the engine yet) the cache cannot be checked here; jobs are then enqueued
    and the worker, which checks the cache under the clip lock, makes each clip once.
    """
    engine = settings.TTS_ENGINE
    model_version = engine_version_current(engine=engine)
    summary = PregenerateSummary(dry_run=dry_run, model_version=model_version)
    phrases = ReminderPhrase.objects.filter(is_active=True)
    if owner_ids is not None:
        phrases = phrases.filter(owner_id__in=list(owner_ids))
    owners_with_phrases = set(phrases.values_list("owner_id", flat=True).distinct())
    total = phrases.count()
    # Voice order (owners without a voice last): consecutive jobs share a reference.
    voice_rows = list(Voice.objects.filter(owner_id__in=owners_with_phrases, is_active=True)
                      .values_list("owner_id", "id", "adaptation_state", "adaptation_style_sha"))
    voices = {owner: voice_id for owner, voice_id, _, _ in voice_rows}
    # Each voice's own style table, once adapted, is in its clips' keys (services/voice_adaptation.py).
    styles = {owner: (sha if state == AdaptationState.DONE else "") for owner, _, state, sha in voice_rows}
    ordered = sorted(owners_with_phrases, key=lambda o: (o not in voices, str(voices.get(o, "")), o))

    if not dry_run:
        # Owners left without active phrases keep no pinned clips (the quota may evict them).
        unpin = Clip.objects.filter(pinned=True).exclude(owner_id__in=owners_with_phrases)
        if owner_ids is not None:
            unpin = unpin.filter(owner_id__in=list(owner_ids))
        unpin.update(pinned=False)

    done = 0
    for owner_batch in _batches(ordered, batch_size or settings.REMINDERS_BATCH_SIZE):
        batch_phrases = list(phrases.filter(owner_id__in=owner_batch).order_by("id"))
        by_owner: dict[int, list[ReminderPhrase]] = {}
        for phrase in batch_phrases:
            by_owner.setdefault(phrase.owner_id, []).append(phrase)
        keys: dict[int, str] = {}
        if model_version:
            for phrase in batch_phrases:
                voice_id = voices.get(phrase.owner_id)
                if voice_id is not None:
                    keys[phrase.id] = clip_cache_key(
                        voice_id=voice_id, text=phrase.text, language=phrase.language, engine=engine,
                        model_version=model_version, params=PHRASE_PARAMS, style=styles.get(phrase.owner_id, ""),
                    )
        cached = set(
            Clip.objects.filter(owner_id__in=owner_batch, cache_key__in=set(keys.values()))
            .values_list("owner_id", "cache_key")
        )
        if model_version and not dry_run:
            _pins_reconcile(owner_ids=owner_batch, cache_keys=set(keys.values()))
        in_flight = {
            (owner, str(voice), text, language)
            for owner, voice, text, language, params in Job.objects.filter(
                owner_id__in=owner_batch, status__in=(Job.Status.QUEUED, Job.Status.RUNNING)
            ).values_list("owner_id", "voice_id", "text", "language", "params")
            if params == PHRASE_PARAMS
        }

        for owner_id in owner_batch:
            voice_id = voices.get(owner_id)
            for phrase in by_owner.get(owner_id, []):
                summary.phrases += 1
                key = keys.get(phrase.id)
                if voice_id is None:
                    summary.no_voice += 1
                elif key is not None and (owner_id, key) in cached:
                    summary.cached += 1
                elif (owner_id, str(voice_id), phrase.text, phrase.language) in in_flight:
                    summary.in_flight += 1
                elif dry_run:
                    summary.enqueued += 1
                else:
                    _phrase_job_create(phrase=phrase, summary=summary)
                done += 1
            if progress is not None:
                progress(done, total)
    logger.info("reminder pre-generation: %s", summary.line())
    return summary


def _pins_reconcile(*, owner_ids: Sequence[int], cache_keys: set[str]) -> None:
    """Pin exactly the clips today's phrases use, so the per-user clip quota never evicts
    a reminder; clips of deleted phrases or older voices/models become evictable again."""
    Clip.objects.filter(owner_id__in=owner_ids, cache_key__in=cache_keys, pinned=False).update(pinned=True)
    Clip.objects.filter(owner_id__in=owner_ids, pinned=True).exclude(cache_key__in=cache_keys).update(pinned=False)


def _phrase_job_create(*, phrase: ReminderPhrase, summary: PregenerateSummary) -> None:
    try:
        job = job_create(
            owner_id=phrase.owner_id,
            text=phrase.text,
            language=phrase.language,
            params=dict(PHRASE_PARAMS),
            queue=settings.SYNTHESIS_BATCH_QUEUE,
        )
    except ServiceError as exc:
        # e.g. a phrase longer than a lowered JOB_TEXT_MAX_CHARS: reported, not retried.
        summary.failed += 1
        summary.errors.append(f"phrase {phrase.id}: {exc.code}: {exc.message}")
        return
    if isinstance(job, ClipHit):
        summary.cached += 1  # made by someone else between our lookup and job_create
    else:
        summary.enqueued += 1


def reminders_on_model_loaded(*, engine: str, model_version: str) -> bool:
    """Called by each worker process once its engine is loaded.

    The first process (across all hosts) to load a version it has never seen schedules
    regeneration for everyone; the others, and restarts with the same weights, do
    nothing. Returns whether this call scheduled it.
    """
    marker = redis_key("reminders", "regenerated", engine, model_version)
    try:
        first = redis_client().set(marker, "1", nx=True)
    except redis.RedisError:
        logger.warning("Redis unavailable: reminders for %s %s wait for the nightly run", engine, model_version)
        return False
    if not first:
        return False
    logger.info("model %s %s loaded: reminders re-made for everyone", engine, model_version)
    # Not sent (broker down): the nightly run catches up.
    return reminders_pregenerate_send(owner_id=None)
