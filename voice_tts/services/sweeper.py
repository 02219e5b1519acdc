"""The sweeper: the database row is the source of truth, the queue is only a hint.

Task messages can be lost (Redis restarted without persistence, the broker down when
a job was committed, a worker killed while Redis also lost its unacked message). Every
JOB_SWEEP_INTERVAL_SECONDS, Celery beat runs jobs_sweep(), which looks at rows, not at
the queue: jobs stuck `queued` are sent again, jobs stuck `running` past the hard time
limit are given back to the queue, and after bounded tries a job fails `worker_lost`.
Held jobs (waiting for their turn, services.turns) were never sent: nothing of theirs is lost.
Re-sending is always safe: a duplicate message finds the job claimed or finished.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Q
from django.utils import timezone

from voice_tts.dispatch import webhook_delivery_send
from voice_tts.models import Job, WebhookDelivery, WebhookStatus
from voice_tts.services.jobs import job_enqueue, job_state_refresh
from voice_tts.storage import storage_partials_remove

logger = logging.getLogger(__name__)

_BATCH = 500


@dataclass
class SweepReport:
    requeued: int = 0
    released: int = 0
    failed: int = 0
    webhooks_resent: int = 0
    partials_removed: int = 0


def _fail_lost(job_ids: list, message: str) -> int:
    now = timezone.now()
    failed = Job.objects.filter(id__in=job_ids, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).update(
        status=Job.Status.FAILED, error_code="worker_lost", error_message=message, finished_at=now,
        webhook_status=WebhookStatus.PENDING,
    )
    _states_refresh(job_ids)
    return failed


def _states_refresh(job_ids: list) -> None:
    # Polling reads a job's state from Redis: show what the sweeper just changed.
    for job_id, owner_id in Job.objects.filter(id__in=job_ids).values_list("id", "owner_id"):
        job_state_refresh(job_id=job_id, owner_id=owner_id)


def jobs_sweep(*, now: datetime | None = None) -> SweepReport:
    now = now or timezone.now()
    report = SweepReport()

    # Running past the hard time limit: its worker is gone (the limit would have
    # killed it otherwise). Give it back to the queue unless it has used its tries.
    running_deadline = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + settings.JOB_RUNNING_GRACE_SECONDS)
    stale_running = list(
        Job.objects.filter(status=Job.Status.RUNNING, started_at__lt=running_deadline)
        .values_list("id", "attempts")[:_BATCH]
    )
    exhausted = [job_id for job_id, attempts in stale_running if attempts >= settings.JOB_MAX_ATTEMPTS]
    report.failed += _fail_lost(exhausted, "The job's worker stopped responding too many times.")
    for job_id, attempts in stale_running:
        if attempts < settings.JOB_MAX_ATTEMPTS and Job.objects.filter(
            id=job_id, status=Job.Status.RUNNING, started_at__lt=running_deadline
        ).update(status=Job.Status.QUEUED, task_id=""):
            _states_refresh([job_id])
            job_enqueue(job_id=job_id)
            report.released += 1

    # Queued with no sign of life: its message may be lost. Send it again. Held jobs are not
    # lost: they wait for their turn as rows (services.turns), however long that takes.
    queued_deadline = now - timedelta(seconds=settings.JOB_QUEUED_DEADLINE_SECONDS)
    stale_queued = list(
        Job.objects.filter(status=Job.Status.QUEUED, held=False)
        .filter(Q(enqueued_at__lt=queued_deadline) | Q(enqueued_at__isnull=True, created_at__lt=queued_deadline))
        .values_list("id", "enqueue_count")[:_BATCH]
    )
    exhausted = [job_id for job_id, sent in stale_queued if sent >= settings.JOB_MAX_ENQUEUES]
    report.failed += _fail_lost(exhausted, "No worker took the job after it was sent several times.")
    for job_id, sent in stale_queued:
        if sent < settings.JOB_MAX_ENQUEUES:
            job_enqueue(job_id=job_id)
            report.requeued += 1

    # Finished jobs whose webhook task never ran (broker down when they finished).
    webhook_deadline = now - timedelta(seconds=settings.JOB_QUEUED_DEADLINE_SECONDS)
    attempted = WebhookDelivery.objects.values("job_id")
    for job_id in (
        Job.objects.filter(webhook_status=WebhookStatus.PENDING, status__in=Job.FINISHED,
                           finished_at__lt=webhook_deadline)
        .exclude(id__in=attempted)
        .values_list("id", flat=True)[:_BATCH]
    ):
        webhook_delivery_send(job_id=job_id)
        report.webhooks_resent += 1

    # Temp files of writers killed mid-write (older than any write may take), in MEDIA_ROOT/.partial:
    # local storage only, where MEDIA_ROOT is the one disk every host writes to. On S3 there is
    # nothing to remove here (a write is one PUT, never a temp object; see storage.py), and the
    # temp files of reference copies live on each worker host, which prunes its own (worker/signals.py).
    report.partials_removed = storage_partials_remove(
        storage=default_storage, older_than_seconds=settings.CELERY_TASK_TIME_LIMIT + settings.JOB_RUNNING_GRACE_SECONDS
    )

    if report.failed or report.requeued or report.released or report.webhooks_resent or report.partials_removed:
        logger.warning("sweep: %s", report)
    return report
