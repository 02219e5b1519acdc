"""Celery tasks: take an id, call a service. Retries only for named transient errors.

Services send these by name through `voice_tts.dispatch` (never by importing this module).
"""

from __future__ import annotations

import logging
import random
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from voice_tts.models import Job, WebhookStatus
from voice_tts.services.broker import broker_reconcile
from voice_tts.services.care_alerts import care_alert_send, care_tick
from voice_tts.services.clips import clip_uses_flush
from voice_tts.services.jobs import job_fail, job_run
from voice_tts.services.reminders import reminders_pregenerate
from voice_tts.services.sweeper import jobs_sweep
from voice_tts.services.turns import jobs_release
from voice_tts.services.voice_adaptation import (
    voice_adaptation_slice,
    voice_adaptation_timed_out,
    voice_adaptations_resend,
)
from voice_tts.services.webhooks import webhook_deliver, webhook_status_set
from voice_tts.worker.runtime import db_connections_drop
from workers.engines.base import EngineTransientError

logger = logging.getLogger(__name__)


def _backoff(retries: int, *, base: float, cap: float) -> float:
    # Exponential with full jitter, so retries from many jobs do not arrive in waves.
    # Not Celery's retry_backoff/retry_jitter: whole seconds only (factor >= 1 s, randrange); our bases are floats.
    return random.uniform(0, min(cap, base * 2**retries))


# No task stores a result (CELERY_TASK_IGNORE_RESULT, no result backend): the Job row is the
# record of a synthesis and of its webhook.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=settings.JOB_TRANSIENT_RETRIES)
def job_synthesize_task(self, job_id: str, first_tried_at: float | None = None) -> None:
    """Transient errors (EngineTransientError only) are retried `max_retries` times on the
    JOB_RETRY_* backoff; the retry is the same message (same task id) with `retries + 1`.
    `first_tried_at` (epoch seconds) rides along on the retries, for the give-up message."""
    if first_tried_at is None:
        first_tried_at = time.time()
    try:
        job_run(job_id=job_id, task_id=self.request.id, final_attempt=self.request.retries >= self.max_retries,
                tries=self.request.retries + 1, first_tried_at=first_tried_at)
    except EngineTransientError as exc:
        # Hand-written retry, not autoretry_for: it must pass `first_tried_at` on (kwargs) and float-second bounds.
        countdown = _backoff(self.request.retries, base=settings.JOB_RETRY_BASE_SECONDS,
                             cap=settings.JOB_RETRY_MAX_SECONDS)
        raise self.retry(exc=exc, countdown=countdown, kwargs={"first_tried_at": first_tried_at}) from exc
    except SoftTimeLimitExceeded:
        # The limit's signal may have landed inside a query: start from a new connection.
        db_connections_drop()
        job = Job.objects.get(id=job_id)
        job_fail(job=job, code="timeout", message="Synthesis took longer than the time limit.")


@shared_task(bind=True, acks_late=True, max_retries=None)
def webhook_deliver_task(self, job_id: str) -> None:
    attempt = self.request.retries + 1
    outcome = webhook_deliver(job_id=job_id, attempt=attempt)
    if outcome.delivered or not outcome.retryable:
        return
    if attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
        logger.warning("webhook for job %s given up after %d attempts", job_id, attempt)
        webhook_status_set(job_id=job_id, status=WebhookStatus.FAILED)
        return
    # Hand-written retry, not autoretry_for: only some outcomes retry, and the receiver's Retry-After is a floor.
    countdown = _backoff(self.request.retries, base=settings.WEBHOOK_RETRY_BASE_SECONDS, cap=3600.0)
    if outcome.retry_after is not None:
        countdown = max(countdown, min(outcome.retry_after, 3600.0))
    raise self.retry(countdown=countdown)


@shared_task(acks_late=True)
def jobs_sweep_task() -> None:
    jobs_sweep()
    # Style searches whose slice message was lost (services/voice_adaptation.py).
    resent = voice_adaptations_resend()
    if resent:
        logger.info("voice style searches resumed: %d", resent)


@shared_task(acks_late=True)
def jobs_release_task() -> None:
    """Beat, every JOBS_RELEASE_SECONDS: the safety net of fair turns. Every finished job releases
    the next turns itself; this pass catches a release cut short (a worker killed between the
    finish and the release, a job failed by the sweeper, a database error)."""
    report = jobs_release()
    if report.released:
        logger.info("beat released %d held jobs", report.released)


@shared_task(acks_late=True)
def broker_reconcile_task() -> None:
    """Beat, every BROKER_WATCH_SECONDS, and each worker once as it starts: re-send the queued
    jobs whose message the broker lost. A broker still down is logged; the next run tries again."""
    broker_reconcile()


@shared_task(acks_late=True)
def clip_uses_flush_task() -> None:
    """Beat, every CLIP_USE_FLUSH_SECONDS: the clip uses counted in Redis into the rows."""
    clip_uses_flush()


@shared_task(acks_late=True)
def reminders_pregenerate_task(owner_id: int | None = None) -> None:
    """Nightly (django-celery-beat, no args: everyone) and after a new voice, phrase or
    model (one owner, or everyone). Cheap: it only enqueues batch synthesis jobs."""
    summary = reminders_pregenerate(owner_ids=None if owner_id is None else [owner_id])
    logger.info("reminders pre-generated: %s", summary.as_dict())


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def care_tick_task() -> None:
    """Beat, every CARE_TICK_SECONDS: doses made ahead, windows closed, silent Pis, due alerts."""
    summary = care_tick()
    if summary.unconfirmed or summary.missed or summary.silent or summary.back or summary.stale_sends:
        logger.info("care tick: %s", summary)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def care_alert_send_task(alert_id: int) -> None:
    """One alert, sent once (claimed before sending: a rerun is a no-op). A retryable failure puts
    the row back with a backoff for the tick; nothing is retried here."""
    care_alert_send(alert_id=alert_id)


# Time limits come with each message (dispatch.voice_adapt_slice_send). acks_late and
# reject_on_worker_lost: a worker that dies mid-slice gets the message redelivered, and the slice
# resumes from the last stored state once the dead one's claim has expired.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def voice_adapt_slice_task(voice_id: str) -> None:
    """A few steps of a voice's style search; the service sends the next slice itself."""
    try:
        outcome = voice_adaptation_slice(voice_id=voice_id)
    except SoftTimeLimitExceeded:
        db_connections_drop()
        voice_adaptation_timed_out(voice_id=voice_id)
        return
    logger.info("voice %s: style adaptation slice: %s", voice_id, outcome)
