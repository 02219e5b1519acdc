"""voice_tts.dispatch sends tasks by name: every name must be a task the worker registers,
routed to the queue settings name for it."""

from __future__ import annotations

from django.conf import settings

from medicine_project.celery import app
from voice_tts import dispatch


def test_every_dispatched_name_is_a_registered_task():
    app.loader.import_default_modules()  # what a worker does at start (autodiscovery)
    assert set(dispatch.TASK_NAMES) <= set(app.tasks)


def test_tasks_are_routed_to_their_queues():
    route = app.amqp.router.route
    assert route({}, dispatch.JOB_SYNTHESIZE_TASK)["queue"].name == settings.SYNTHESIS_QUEUE
    assert route({}, dispatch.WEBHOOK_DELIVER_TASK)["queue"].name == settings.WEBHOOK_QUEUE
    assert route({"queue": settings.SYNTHESIS_BATCH_QUEUE}, dispatch.JOB_SYNTHESIZE_TASK)["queue"].name == \
        settings.SYNTHESIS_BATCH_QUEUE


def test_time_limits_grow_with_the_text_within_the_global_caps():
    short, long = dispatch.job_time_limits(text_length=10), dispatch.job_time_limits(text_length=10**6)
    assert short[0] < long[0] <= settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert short[0] < short[1] and long[1] <= settings.CELERY_TASK_TIME_LIMIT
