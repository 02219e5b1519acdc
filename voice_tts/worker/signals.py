"""Celery signal hooks: load the engine once per worker process, never per job.

Only processes of a worker that consumes the synthesis queue load an engine; a worker
started with `-Q webhooks` alone never touches the GPU. Connected by `VoiceTtsConfig.ready()`
(Celery's Django fixup runs `django.setup()` at `worker_init`, before any of these fire).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import signals
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from voice_tts.dispatch import broker_reconcile_send
from voice_tts.services.reminders import reminders_on_model_loaded
from voice_tts.services.voices import voice_reference_cache_prune
from voice_tts.worker import runtime
from voice_tts.worker.runtime import db_connections_drop
from workers.memory import heap_trim

logger = logging.getLogger(__name__)

# Set in the worker's main process before the pool forks, inherited by its children.
_consumed_queues: list[str] = []


@signals.celeryd_after_setup.connect
def _remember_queues(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    _consumed_queues[:] = sorted(instance.app.amqp.queues.consume_from or instance.app.amqp.queues)


@signals.worker_ready.connect
def _broker_check_at_start(**kwargs: Any) -> None:
    # Jobs queued while no worker ran may have lost their messages with a Redis that restarted
    # empty meanwhile, and beat's checks expire unrun: check once now, on a queue this worker
    # consumes (a synthesis-only worker too), so the first worker to come re-sends them.
    consumed = [queue for queue in settings.CELERY_QUEUES_ALL if queue in _consumed_queues] or _consumed_queues
    broker_reconcile_send(queue=consumed[0] if consumed else "")


@signals.worker_process_init.connect
def _load_engine(**kwargs: Any) -> None:
    # A worker dedicated to the nightly batch queue synthesises too.
    synthesis_queues = {settings.SYNTHESIS_QUEUE, settings.SYNTHESIS_BATCH_QUEUE}
    if not synthesis_queues & set(_consumed_queues):
        logger.info("worker does not consume %s: no engine loaded", ", ".join(sorted(synthesis_queues)))
        return
    runtime.engine_start(name=settings.TTS_ENGINE, queues=list(_consumed_queues), on_loaded=_model_loaded)
    if settings.STORAGE_BACKEND != "local":  # local storage: engines read the stored file, nothing is copied
        threading.Thread(target=_reference_cache_prune_loop, name="reference-cache-prune", daemon=True).start()


def _reference_cache_prune_loop() -> None:
    # With media on S3 each synthesis host keeps its own copies of references (voice_reference_path);
    # the web that deletes a voice cannot reach them, so every synthesis process removes the copies
    # of deleted voices itself, and temp files of copies cut short (older than any task may take).
    # Its own thread has its own database connection (Django's are per thread): closed after every
    # round, so a long pause never leaves a stale one behind.
    older_than = settings.CELERY_TASK_TIME_LIMIT + settings.JOB_RUNNING_GRACE_SECONDS
    while True:
        try:
            voice_reference_cache_prune(older_than_seconds=older_than)
        except (DatabaseError, OSError):  # the database away, a disk error: try again next round
            logger.warning("reference cache prune failed", exc_info=True)
        finally:
            connections.close_all()
        time.sleep(settings.VOICE_REFERENCE_CACHE_PRUNE_SECONDS)


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
