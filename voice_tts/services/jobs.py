"""Synthesis jobs: create (cache hit or enqueue), run in a worker, finish.

The job row is the source of truth. A worker claims a job with a conditional UPDATE,
so a redelivered or duplicated task message does nothing for a job that is finished
or being run by someone else.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from voice_tts import result_cache
from voice_tts.dispatch import job_synthesis_send, webhook_delivery_send
from voice_tts.errors import ServiceError
from voice_tts.models import AdaptationState, Job, Voice, WebhookStatus
from voice_tts.redis_client import redis_client, redis_key
from voice_tts.result_cache import JOB_STATE_COLUMNS, CachedClip, ClipHit, JobState
from voice_tts.services.clips import (
    clip_cache_key,
    clip_hit,
    clip_lookup,
    clip_store,
    clip_use_record,
    clips_evict_over_quota,
)
from voice_tts.services.device_formats import clip_encodings_for_devices
from voice_tts.services.job_text import SUPPORTED_LANGUAGES, job_text_normalise
from voice_tts.services.turns import jobs_release
from voice_tts.services.voice_adaptation import voice_style_key, voice_style_key_of, voice_style_local_path
from voice_tts.services.voices import voice_reference_path
from voice_tts.services.webhook_targets import webhook_url_check
from voice_tts.worker import runtime
from voice_tts.worker.status import engine_version_from_db, engine_version_restored
from workers.engines.base import STYLE_TABLE_PARAM, EngineError, EngineTransientError
from workers.speech_text import text_normalise_for_speech

logger = logging.getLogger(__name__)


def job_enqueue(*, job_id: Any) -> bool:
    """Send a released job's task message again (the sweeper, or the broker watch, for a message a
    broker lost or never took), to the queue recorded on its row (interactive synthesis, or the
    batch queue for pre-generation). Recorded first, so that if the broker is down (or later
    loses the message) the sweeper knows when to send it again. False: the broker refused it.
    Never for a held job: its first message is its turn (services.turns.jobs_release)."""
    Job.objects.filter(id=job_id).update(enqueued_at=timezone.now(), enqueue_count=F("enqueue_count") + 1)
    text, queue = Job.objects.values_list("text", "queue").get(id=job_id)
    return job_synthesis_send(job_id=job_id, text_length=len(text), queue=queue)


# Retry-After for too_many_pending_jobs when the owner has no finished synthesis to measure by.
_PENDING_JOB_SECONDS_DEFAULT = 5.0
_PENDING_RETRY_AFTER_MAX = 600


def _pending_retry_after(*, owner_id: int, over: int) -> int:
    """Seconds until `over` of the owner's jobs have likely finished: `over` times the mean synthesis time of
    their last 20 syntheses (one worker's pace: an estimate that errs long when several workers share them)."""
    recent = list(
        Job.objects.filter(owner_id=owner_id, status=Job.Status.SUCCEEDED, cache_hit=False,
                           processing_time_ms__isnull=False)
        .order_by("-created_at").values_list("processing_time_ms", flat=True)[:20]
    )
    per_job = sum(recent) / len(recent) / 1000 if recent else _PENDING_JOB_SECONDS_DEFAULT
    return max(1, min(_PENDING_RETRY_AFTER_MAX, math.ceil(over * per_job)))


def jobs_pending_admit(*, owner_id: int) -> None:
    """Refuse (`too_many_pending_jobs`, with `retry_after` in seconds) the transaction that has just inserted
    the owner's new jobs if the owner now has more than USER_MAX_PENDING_JOBS unfinished interactive ones; the
    caller's rollback then takes all of them back. Call it inside that transaction, after the inserts.

    Counting after inserting, under a lock on the owner's user row, makes two requests at once safe: on
    PostgreSQL the second one's count waits for the first one's commit and then sees its rows (READ COMMITTED
    reads rows committed before each statement); SQLite's IMMEDIATE transactions (settings.py) already run one
    writer at a time. Pre-generation's jobs (the batch queue) are not counted: the nightly reminders must not
    keep a caregiver from asking for speech in the morning."""
    get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk", flat=True).first()
    pending = (Job.objects.filter(owner_id=owner_id, status__in=(Job.Status.QUEUED, Job.Status.RUNNING))
               .exclude(queue=settings.SYNTHESIS_BATCH_QUEUE).count())
    cap = settings.USER_MAX_PENDING_JOBS
    if pending > cap:
        over = pending - cap
        raise ServiceError(
            "too_many_pending_jobs",
            f"At most {cap} of your jobs may wait unfinished at once; with this request there would be {pending}. "
            f"Nothing was queued: try again once some have finished.",
            retry_after=_pending_retry_after(owner_id=owner_id, over=over),
        )


def _active_voice_id(*, owner_id: int, context: result_cache.HitContext) -> tuple[Any, str]:
    """The owner's active voice and its style key (services/voice_adaptation.py), from Redis when kept."""
    if context.voice_id is not None:
        return context.voice_id, context.voice_style
    row = (Voice.objects.filter(owner_id=owner_id, is_active=True)
           .values_list("id", "adaptation_state", "adaptation_style_sha").first())
    if row is None:
        return None, ""
    voice_id, style = row[0], (row[2] if row[1] == AdaptationState.DONE else "")
    result_cache.active_voice_remember(owner_id=owner_id, voice_id=voice_id, generation=context.generation,
                                       style=style)
    return voice_id, style


def _clip_hit(*, owner_id: int, cache_key: str, generation: int | None) -> CachedClip | None:
    """The clip for a key, its use counted: from Redis, else from the database (then kept)."""
    cached = result_cache.clip_hit_cached(owner_id=owner_id, cache_key=cache_key)
    if cached is not None:
        return cached
    clip = clip_hit(owner_id=owner_id, cache_key=cache_key)
    if clip is not None:
        result_cache.clip_remember(owner_id=owner_id, clip=clip, generation=generation)
        clip_use_record(clip_id=clip.id)
    return clip


def job_create(
    *,
    owner_id: int,
    text: str,
    language: str = "ko",
    params: dict[str, Any] | None = None,
    use_cache: bool = True,
    webhook_url: str = "",
    queue: str | None = None,
    voice_id: Any = None,
    pending_check: bool = True,
    release: bool = True,
) -> Job | ClipHit:
    """Answer from the clip cache when possible, else queue a job.

    A hit writes no row (a `ClipHit`) unless the request carries a webhook: its delivery needs
    a job to record it (a finished job). With warm Redis entries a hit runs no SQL at all.
    `voice_id`: speak with this one of the owner's voices (the caller checked that it is the
    owner's: services.speech, once per request); None: the owner's active voice.
    A queued job counts against USER_MAX_PENDING_JOBS (`jobs_pending_admit`), except on the batch
    queue (pre-generation) and where the caller checks once for many jobs (`pending_check=False`).
    `release=False`: the caller, queuing many jobs in one transaction, runs one release pass for the
    owner at the end of that transaction (services.turns.jobs_release) instead of one per job.
    """
    params = params or {}
    text = job_text_normalise(text=text)
    if language not in SUPPORTED_LANGUAGES:
        raise ServiceError("unsupported_language", f"language must be one of {', '.join(SUPPORTED_LANGUAGES)}.")
    engine = settings.TTS_ENGINE
    # One Redis round trip: the owner's generation (read before any row), the active voice,
    # the model version.
    context = result_cache.hit_context(owner_id=owner_id, engine=engine)
    if voice_id is None:
        voice_id, style = _active_voice_id(owner_id=owner_id, context=context)
    else:
        style = voice_style_key_of(voice_id=voice_id)
    if voice_id is None:
        raise ServiceError("no_active_voice", "Upload a voice sample first (POST /api/tts/voices/).")
    if webhook_url:
        webhook_url_check(url=webhook_url, owner_id=owner_id)
    fields = dict(owner_id=owner_id, voice_id=voice_id, text=text, language=language, params=params,
                  webhook_url=webhook_url)

    # The MGET above already asked Redis: on a miss go straight to the database.
    if context.model_version is not None:
        model_version = context.model_version
    elif context.generation is None:  # Redis is down
        model_version = engine_version_from_db(engine=engine)
    else:
        model_version = engine_version_restored(engine=engine)
    if use_cache and model_version:
        key = clip_cache_key(
            voice_id=voice_id, text=text, language=language, engine=engine, model_version=model_version, params=params,
            style=style,
        )
        clip = _clip_hit(owner_id=owner_id, cache_key=key, generation=context.generation)
        if clip is not None and not webhook_url:
            return ClipHit(clip=clip, text=text, language=language)
        if clip is not None:
            now = timezone.now()
            job = Job.objects.create(
                **fields, use_cache=True, webhook_status=WebhookStatus.PENDING, status=Job.Status.SUCCEEDED,
                cache_hit=True, cache_key=key, clip_id=clip.id, started_at=now, finished_at=now, processing_time_ms=0,
            )
            state = result_cache.job_state_of(job, duration_seconds=clip.duration_seconds)
            transaction.on_commit(
                lambda: result_cache.job_state_remember(state, generation=context.generation, writer=True)
            )
            # At once when no outer transaction is open, else after it commits.
            transaction.on_commit(lambda: webhook_delivery_send(job_id=job.id))
            return job

    # Held: the row is the queue of record (services.turns). Once it is committed, this user's
    # turn is taken: the job goes to the broker at once when the user has a free slot, else when
    # one of their jobs finishes. The release records the send on the row (`enqueued_at`) for the
    # sweeper and the broker watch to send again if the broker is down or loses the message.
    queue = queue or ""
    priority = Job.Priority.INTERACTIVE if queue in ("", settings.SYNTHESIS_QUEUE) else Job.Priority.BATCH
    with transaction.atomic():
        job = Job.objects.create(**fields, use_cache=use_cache, queue=queue, priority=priority, held=True)
        if pending_check and job.queue != settings.SYNTHESIS_BATCH_QUEUE:
            jobs_pending_admit(owner_id=owner_id)
        state = result_cache.job_state_of(job)
        # Registered before the release's send: the `queued` state is kept before a worker can claim the job
        # and keep `running` (on_commit callbacks run in the order they were registered).
        transaction.on_commit(
            lambda: result_cache.job_state_remember(state, generation=context.generation, writer=True))
        if release:
            # The release pass inside the job's own transaction (it takes the turns lock there; its message
            # leaves after the commit), not in a second transaction after it: one commit less between the
            # request and the worker (on SQLite, a second IMMEDIATE transaction and WAL write).
            jobs_release(owner_id=owner_id)
    return job


def job_state_get(*, owner_id: int, job_id: Any) -> JobState | None:
    """The owner's job, or None (other users' jobs too): from Redis, else one query (kept)."""
    state, found, generation = result_cache.job_state_cached(owner_id=owner_id, job_id=job_id)
    if found:
        return state
    row = Job.objects.filter(id=job_id, owner_id=owner_id).values(*JOB_STATE_COLUMNS).first()
    if row is None:
        return None
    state = result_cache.job_state_from_row(row)
    result_cache.job_state_remember(state, generation=generation, writer=False)
    return state


def job_state_refresh(*, job_id: Any, owner_id: int) -> None:
    """Re-read a job after one of its state changes and keep it for polling. The generation is
    read before the row, so a clip or voice deleted meanwhile is never shown as present."""
    generation = result_cache.owner_generation(owner_id=owner_id)
    row = Job.objects.filter(id=job_id).values(*JOB_STATE_COLUMNS).first()
    if row is None:
        result_cache.job_state_forget(job_id=job_id)
        return
    result_cache.job_state_remember(result_cache.job_state_from_row(row), generation=generation, writer=True)


def job_claim(*, job_id: Any, task_id: str) -> bool:
    """Take the job for this task message. A message redelivered after its worker died
    carries the same task id, so it may take back its own `running` job.

    Every claim counts one in `attempts`; a claim that ends in a transient error gives it
    back (job_release), so `attempts` is this claim plus one per claim whose worker died
    (SIGKILL, OOM, segfault): JOB_MAX_ATTEMPTS bounds worker deaths, never transient retries."""
    return bool(
        # Not a held job: a stray message must not run it out of its turn (and outside the count).
        Job.objects.filter(id=job_id, held=False)
        .filter(Q(status=Job.Status.QUEUED) | Q(status=Job.Status.RUNNING, task_id=task_id))
        .update(status=Job.Status.RUNNING, task_id=task_id, started_at=timezone.now(), attempts=F("attempts") + 1)
    )


def _job_finish(*, job: Job, generation: int | None = None, **fields: Any) -> None:
    """Finish a running job (a conditional UPDATE: only once), then keep its state for polling:
    built from `job` and the changes when the caller read the owner's `generation` right after
    loading the job (the worker), else read back from the row."""
    finished_at = timezone.now()
    started_at = job.started_at or finished_at
    changes = dict(
        finished_at=finished_at,
        webhook_status=WebhookStatus.PENDING if job.webhook_url else "",
        processing_time_ms=int((finished_at - started_at).total_seconds() * 1000),
        **fields,
    )
    with transaction.atomic():
        updated = Job.objects.filter(id=job.id, status=Job.Status.RUNNING).update(**changes)
        if updated:
            transaction.on_commit(lambda: _job_finished_state(job=job, changes=changes, generation=generation))
            # After the state: a stream woken by this push reads the finished state.
            transaction.on_commit(lambda: result_cache.job_finished_signal(job_id=job.id))
        if updated and job.webhook_url:
            transaction.on_commit(lambda: webhook_delivery_send(job_id=job.id))
    if updated:
        # A slot is free: the next turn goes out now, before this task's message is acknowledged,
        # so the worker's next fetch already sees it (every user: the freed slot may be theirs).
        jobs_release()


def _job_finished_state(*, job: Job, changes: dict[str, Any], generation: int | None) -> None:
    if generation is None:
        job_state_refresh(job_id=job.id, owner_id=job.owner_id)
        return
    for name, value in changes.items():
        setattr(job, name, value)
    clip = changes.get("clip")
    state = result_cache.job_state_of(job, duration_seconds=clip.duration_seconds if clip is not None else None)
    result_cache.job_state_remember(state, generation=generation, writer=True)


def job_fail(*, job: Job, code: str, message: str, generation: int | None = None) -> None:
    _job_finish(job=job, generation=generation, status=Job.Status.FAILED, error_code=code,
                error_message=message[:2000])


def job_release(*, job_id: Any, task_id: str, owner_id: int) -> bool:
    """Give this task's running job back to the queue before the task retries a transient error.

    The claim is given back too (`attempts - 1`, in the same conditional UPDATE): that try did
    not end with its worker dying, so it must not count toward JOB_MAX_ATTEMPTS (the retry is
    counted when it claims the job). One column keeps meaning one thing without a second counter
    or a migration, and a redelivery after SIGKILL (no release) still counts. Only this task's
    own claim is given back: a job the sweeper handed to another task is left alone. The retry's
    message is sent now, so the row counts as sent now (`enqueued_at`): the sweeper does not
    send a second one while the retry waits out its countdown."""
    released = bool(
        Job.objects.filter(id=job_id, status=Job.Status.RUNNING, task_id=task_id).update(
            status=Job.Status.QUEUED, attempts=F("attempts") - 1, enqueued_at=timezone.now()
        )
    )
    if released:
        job_state_refresh(job_id=job_id, owner_id=owner_id)
    return released


# How a job that used up its transient retries says why, by the error's code.
_TRANSIENT_GAVE_UP = {
    "engine_unavailable": "The speech engine was still unavailable",
    "lock_timeout": "Another job was still making this clip",
    "lock_unavailable": "Redis (the clip lock) was still unavailable",
}


def _duration_words(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _transient_gave_up_message(*, exc: EngineTransientError, tries: int, first_tried_at: float | None) -> str:
    what = _TRANSIENT_GAVE_UP.get(exc.code, "The synthesis still failed")
    over = "" if first_tried_at is None else f" over {_duration_words(time.time() - first_tried_at)}"
    return f"{what} after {tries} {'try' if tries == 1 else 'tries'}{over}: {exc.message}"


def _clip_lock(*, owner_id: int, cache_key: str, job_id: Any) -> Any:
    """One synthesis per (owner, key) at a time across all workers: the second of two
    identical jobs waits, then finds the clip the first one stored.

    The lock's token is the job id. A job redelivered after its worker was killed finds
    its own dead attempt holding the lock and takes it over instead of waiting for the
    lock to expire.
    """
    timeout = settings.CELERY_TASK_TIME_LIMIT
    client = redis_client()
    name = redis_key("lock", "clip", str(owner_id), cache_key)
    token = str(job_id).encode()
    if client.get(name) == token:
        client.delete(name)
    lock = client.lock(name, timeout=timeout, blocking_timeout=timeout)
    return lock, token


def job_run(
    *, job_id: Any, task_id: str, final_attempt: bool = False, tries: int = 1, first_tried_at: float | None = None
) -> None:
    """Run one job in a worker process. Idempotent: a rerun of a finished job is a no-op.

    A transient error releases the job back to `queued` (giving its claim back) and is raised
    for the task to retry, except on the final attempt, where it fails the job with its code and
    says how many `tries` (this one included) it made since `first_tried_at` (epoch seconds).
    """
    if not job_claim(job_id=job_id, task_id=task_id):
        logger.info("job %s not claimable (finished or owned by another task)", job_id)
        return
    job = Job.objects.select_related("voice").get(id=job_id)
    # The job is `running` now: keep that for polling. Its state is built from the row just read
    # and tagged with the owner's generation read right after it; the finished state reuses both.
    # (A voice deleted in the instant between the two reads would show its id until the job ends.)
    generation = result_cache.owner_generation(owner_id=job.owner_id)
    result_cache.job_state_remember(result_cache.job_state_of(job), generation=generation, writer=True)
    if job.attempts > settings.JOB_MAX_ATTEMPTS:
        # Each earlier claim ended with the worker dying (SIGKILL, OOM, segfault):
        # this input is poison for the engine. Stop here instead of looping.
        job_fail(job=job, generation=generation, code="worker_lost",
                 message=f"The worker stopped {job.attempts - 1} times while running this job.")
        return
    voice = job.voice
    if voice is None:
        job_fail(job=job, generation=generation, code="voice_deleted",
                 message="The voice this job was made for has been deleted.")
        return

    def transient(exc: EngineTransientError) -> None:
        # Not a worker death: the claim is given back, so JOB_MAX_ATTEMPTS never sees it; the
        # task's retry schedule (JOB_TRANSIENT_RETRIES) bounds these instead.
        if final_attempt:
            job_fail(job=job, generation=generation, code=exc.code,
                     message=_transient_gave_up_message(exc=exc, tries=tries, first_tried_at=first_tried_at))
            return
        job_release(job_id=job.id, task_id=task_id, owner_id=job.owner_id)
        raise exc

    try:
        engine = runtime.engine_get()
    except EngineError as exc:
        if exc.code in runtime.RETRYABLE_LOAD_CODES:
            # The engine's server was down when this worker loaded it; engine_get loads it
            # again (at most every LOAD_RETRY_SECONDS), so retry like any transient error.
            return transient(EngineTransientError(exc.code, f"The speech engine is not ready: {exc.message}"))
        job_fail(job=job, generation=generation, code=exc.code,
                 message=f"The speech engine is not ready: {exc.message}")
        return

    key = clip_cache_key(
        voice_id=voice.id,
        text=job.text,
        language=job.language,
        engine=engine.name,
        model_version=engine.model_version,
        params=job.params,
        style=voice_style_key(voice=voice),
    )
    try:
        lock, token = _clip_lock(owner_id=job.owner_id, cache_key=key, job_id=job.id)
        acquired = lock.acquire(token=token)
    except redis.RedisError as exc:
        return transient(EngineTransientError("lock_unavailable", f"Redis lock unavailable: {exc}"))
    if not acquired:
        return transient(EngineTransientError("lock_timeout", "another worker held this clip's lock too long"))
    try:
        clip = clip_lookup(owner_id=job.owner_id, cache_key=key) if job.use_cache else None
        if clip is not None:
            clip_use_record(clip_id=clip.id)
            _job_finish(job=job, generation=generation, status=Job.Status.SUCCEEDED, clip=clip, cache_hit=True,
                        cache_key=key)
            return
        try:
            # Numbers, times and units read the way a speaker says them ("1정" -> "한 정"),
            # for every engine; the cache key stays on the text as the user wrote it.
            spoken = text_normalise_for_speech(job.text, job.language)
            engine_params = dict(job.params)
            style_path = voice_style_local_path(voice=voice) if voice_style_key(voice=voice) else None
            if style_path is not None:
                # The voice's own adapted style table (services/voice_adaptation.py), for neural_cpu.
                engine_params[STYLE_TABLE_PARAM] = str(style_path)
            samples, sample_rate = engine.synthesize(
                spoken, job.language, voice_reference_path(voice=voice), voice.transcript or None, engine_params
            )
        except EngineTransientError as exc:
            return transient(exc)
        except EngineError as exc:
            job_fail(job=job, generation=generation, code=exc.code, message=exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - a poison input must fail its job, not loop or kill the worker
            logger.exception("engine raised on job %s", job.id)
            job_fail(job=job, generation=generation, code="engine_failed", message=f"{type(exc).__name__}: {exc}")
            return
        runtime.synthesis_counted()
        if len(samples) == 0 or sample_rate <= 0:
            job_fail(job=job, generation=generation, code="engine_failed", message="The engine returned no audio.")
            return
        clip = clip_store(
            voice=voice,
            cache_key=key,
            text=job.text,
            language=job.language,
            params=job.params,
            engine=engine.name,
            model_version=engine.model_version,
            samples=samples,
            sample_rate=sample_rate,
            generation=generation,
        )
        _job_finish(job=job, generation=generation, status=Job.Status.SUCCEEDED, clip=clip, cache_hit=False,
                    cache_key=key)
    finally:
        try:
            lock.release()
        except redis.RedisError:
            logger.warning("clip lock for job %s expired or Redis is gone", job.id)
    # After the finish, so that a /v1 stream waiting for this clip is not held up by them (Opus takes about 35 ms
    # per second of speech), and before this worker takes its next job: the owner's Pis' next bundle finds them.
    clip_encodings_for_devices(clip=clip)
    clips_evict_over_quota(owner_id=job.owner_id, keep_clip_id=clip.id)


def job_wait(*, job_id: Any, seconds: float) -> Job:
    """Poll the row until the job finishes or `seconds` pass (legacy /generate only)."""
    deadline = time.monotonic() + seconds
    delay = 0.05
    while True:
        job = Job.objects.select_related("clip").get(id=job_id)
        if job.status in Job.FINISHED or time.monotonic() >= deadline:
            return job
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)
