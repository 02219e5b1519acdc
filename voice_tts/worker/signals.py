"""Celery signal hooks: load the engine once per worker process, never per job.

Only processes of a worker that consumes the synthesis queue load an engine; a worker
started with `-Q webhooks` alone never touches the GPU. Connected by `VoiceTtsConfig.ready()`
(Celery's Django fixup runs `django.setup()` at `worker_init`, before any of these fire).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals
from django.conf import settings
from django.db import close_old_connections

from voice_tts.services.reminders import reminders_on_model_loaded
from voice_tts.worker import runtime
from voice_tts.worker.runtime import db_connections_drop
from workers.memory import heap_trim

logger = logging.getLogger(__name__)

# Set in the worker's main process before the pool forks, inherited by its children.
_consumed_queues: list[str] = []


@signals.celeryd_after_setup.connect
def _remember_queues(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    _consumed_queues[:] = sorted(instance.app.amqp.queues.consume_from or instance.app.amqp.queues)


@signals.worker_process_init.connect
def _load_engine(**kwargs: Any) -> None:
    # A worker dedicated to the nightly batch queue synthesises too.
    synthesis_queues = {settings.SYNTHESIS_QUEUE, settings.SYNTHESIS_BATCH_QUEUE}
    if not synthesis_queues & set(_consumed_queues):
        logger.info("worker does not consume %s: no engine loaded", ", ".join(sorted(synthesis_queues)))
        return
    runtime.engine_start(name=settings.TTS_ENGINE, queues=list(_consumed_queues), on_loaded=_model_loaded)


def _model_loaded(engine: str, model_version: str) -> None:
    # New weights change every cache key: have everyone's reminders re-made in the background
    # (once per version across all workers; the service logs failures).
    reminders_on_model_loaded(engine=engine, model_version=model_version)


@signals.worker_process_shutdown.connect
def _unregister(**kwargs: Any) -> None:
    runtime.worker_stopped()


_syntheses_since_trim = 0


@signals.task_postrun.connect
def _trim_heap_now_and_then(sender: Any = None, **kwargs: Any) -> None:
    # Every WORKER_HEAP_TRIM_EVERY syntheses, not after each one: the memory handed back is
    # faulted in again by the next synthesis, which made each job ~0.4 s slower with the tiny
    # GPT-SoVITS model on CPU when trimmed every time (bench/RESULTS.md).
    global _syntheses_since_trim
    every = settings.WORKER_HEAP_TRIM_EVERY
    if not every or getattr(sender, "name", "") != "voice_tts.tasks.job_synthesize_task":
        return
    _syntheses_since_trim += 1
    if _syntheses_since_trim >= every:
        _syntheses_since_trim = 0
        heap_trim()


# Database connections across tasks. Celery's fixup would open one per task; with
# CELERY_DB_REUSE_MAX it keeps it, and these two hooks give a task what Django gives a request:
# before it, the connection is dropped when older than CONN_MAX_AGE or broken by an error (and
# health-checked on first use, CONN_HEALTH_CHECKS); after a task that did not end cleanly it is
# dropped outright, because a query interrupted mid-protocol (a soft time limit's signal) can
# leave a connection that Django's checks still think usable (celery/celery#9824).


@signals.task_prerun.connect
def _db_connections_checked(**kwargs: Any) -> None:
    close_old_connections()


@signals.task_postrun.connect
def _db_connections_dropped_after_trouble(state: str | None = None, **kwargs: Any) -> None:
    if state != "SUCCESS":
        db_connections_drop()
