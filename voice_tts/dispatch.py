"""Every task message the services send goes through here.

Tasks are sent by name (`app.send_task`), so the services never import `voice_tts.tasks`
(which imports the services: a cycle). Routing stays Celery's: the names are routed by
CELERY_TASK_ROUTES, and each task's worker-side options (acks_late, retries) live on its
definition in tasks.py. tests/test_dispatch.py checks that every name here is a registered task.

A broker that is down is not an error for the caller: the database row is the record, and the
sweeper re-sends what never left (jobs) or never ran (webhooks).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.conf import settings
from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger(__name__)

JOB_SYNTHESIZE_TASK = "voice_tts.tasks.job_synthesize_task"
WEBHOOK_DELIVER_TASK = "voice_tts.tasks.webhook_deliver_task"
REMINDERS_PREGENERATE_TASK = "voice_tts.tasks.reminders_pregenerate_task"
BROKER_RECONCILE_TASK = "voice_tts.tasks.broker_reconcile_task"
CARE_TICK_TASK = "voice_tts.tasks.care_tick_task"
CARE_ALERT_SEND_TASK = "voice_tts.tasks.care_alert_send_task"
VOICE_ADAPT_SLICE_TASK = "voice_tts.tasks.voice_adapt_slice_task"
TASK_NAMES = (JOB_SYNTHESIZE_TASK, WEBHOOK_DELIVER_TASK, REMINDERS_PREGENERATE_TASK, BROKER_RECONCILE_TASK,
              CARE_TICK_TASK, CARE_ALERT_SEND_TASK, VOICE_ADAPT_SLICE_TASK)


def _send(name: str, *, args: list[Any], **options: Any) -> bool:
    try:
        current_app.send_task(name, args=args, **options)
    except BrokerError:
        logger.warning("broker unavailable: %s%s not sent", name, args, exc_info=True)
        return False
    return True


def job_time_limits(*, text_length: int) -> tuple[int, int]:
    """(soft, hard) seconds for one synthesis, growing with the text, capped by the
    global limits (which the sweeper and the broker's visibility timeout rely on)."""
    soft = settings.JOB_TIME_LIMIT_BASE_SECONDS + settings.JOB_TIME_LIMIT_PER_CHAR_SECONDS * text_length
    soft = min(int(soft), settings.CELERY_TASK_SOFT_TIME_LIMIT)
    hard = min(soft + 30, settings.CELERY_TASK_TIME_LIMIT)
    return soft, max(hard, soft + 1)


def job_synthesis_send(*, job_id: Any, text_length: int, queue: str = "") -> bool:
    """The job's synthesis message, on its queue (interactive, or the nightly batch queue)."""
    soft, hard = job_time_limits(text_length=text_length)
    return _send(JOB_SYNTHESIZE_TASK, args=[str(job_id)], soft_time_limit=soft, time_limit=hard,
                 queue=queue or settings.SYNTHESIS_QUEUE)


def webhook_delivery_send(*, job_id: Any) -> bool:
    return _send(WEBHOOK_DELIVER_TASK, args=[str(job_id)])


def reminders_pregenerate_send(*, owner_id: int | None) -> bool:
    return _send(REMINDERS_PREGENERATE_TASK, args=[owner_id])


def broker_reconcile_send(*, queue: str = "") -> bool:
    """One broker check (services.broker), on `queue` (default: its route, the webhooks queue)."""
    return _send(BROKER_RECONCILE_TASK, args=[], **({"queue": queue} if queue else {}))


def care_tick_send() -> bool:
    return _send(CARE_TICK_TASK, args=[])


def care_alert_send_send(*, alert_id: int) -> bool:
    """One alert's message (services.care_alerts sends it once, whoever runs it)."""
    return _send(CARE_ALERT_SEND_TASK, args=[alert_id])


def voice_adapt_slice_send(*, voice_id: Any) -> bool:
    """One slice of a voice's style search, on the batch queue with its own time limits: a slice
    is a few steps, so interactive and reminder jobs wait behind at most one."""
    return _send(VOICE_ADAPT_SLICE_TASK, args=[str(voice_id)], queue=settings.SYNTHESIS_BATCH_QUEUE,
                 soft_time_limit=settings.VOICE_ADAPT_SLICE_SOFT_SECONDS,
                 time_limit=settings.VOICE_ADAPT_SLICE_HARD_SECONDS)
