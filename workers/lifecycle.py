"""Celery signal hooks: load the engine once per worker process, never per job.

Only processes of a worker that consumes the synthesis queue load an engine; a worker
started with `-Q webhooks` alone never touches the GPU.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals
from django.conf import settings

from workers import runtime
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
    runtime.engine_start(name=settings.TTS_ENGINE, queues=list(_consumed_queues))


@signals.worker_process_shutdown.connect
def _unregister(**kwargs: Any) -> None:
    runtime.worker_stopped()


@signals.task_postrun.connect
def _trim_heap_after_synthesis(sender: Any = None, **kwargs: Any) -> None:
    # Only after a synthesis: the webhook and sweeper tasks allocate next to nothing.
    if settings.WORKER_HEAP_TRIM and getattr(sender, "name", "") == "voice_tts.tasks.job_synthesize_task":
        heap_trim()
