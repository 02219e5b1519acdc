"""Faults caused for real: workers SIGKILLed mid-synthesis, Redis restarted without
persistence, the broker down while the web enqueues, a poison input that kills its
worker every time. Each test runs a private stack (gunicorn, worker, beat, its own
redis-server) from tests/stack.py that shares the test database.

The `tone` engine stands in for a model here (TONE_DELAY_SECONDS makes it slow,
TONE_CRASH_MARKER makes it die): the GPU engine cannot run on this machine.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from django.conf import settings

from tests.stack import StackClient
from voice_tts.models import Clip, Job

pytestmark = pytest.mark.worker


def clip_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "clips"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_worker_killed_mid_synthesis_redelivers_and_finishes_once(stack_factory, alice):
    stack = stack_factory(env={"TONE_DELAY_SECONDS": "3"}).start()
    api = StackClient(stack, alice.token)
    assert api.upload_voice().status_code == 201
    job = api.job("take the blue pill")
    api.wait(job["id"], until=("running",))
    child = next(w["pid"] for w in stack.workers() if w.get("ready"))

    os.kill(child, signal.SIGKILL)  # the process running the synthesis dies at once

    done = api.wait(job["id"])
    assert done["status"] == "succeeded", done
    row = Job.objects.get(id=job["id"])
    assert row.attempts == 2  # claimed by the dead child, then again on redelivery
    assert Clip.objects.count() == 1
    assert [p.name for p in clip_files()] == [f"{done['cache_key']}.wav"]


def test_redis_restart_loses_queued_messages_and_the_sweeper_recovers_them(stack_factory, alice):
    # The broker watch would re-send them first (tests/test_broker_reconcile.py); with its grace
    # out of reach only the sweeper, the safety net, can.
    stack = stack_factory(env={"JOB_QUEUED_DEADLINE_SECONDS": "2", "JOB_SWEEP_INTERVAL_SECONDS": "1",
                               "BROKER_RECONCILE_GRACE_SECONDS": "86400"}).start()
    api = StackClient(stack, alice.token)
    api.upload_voice()
    stack.stop("worker")  # jobs will sit in Redis
    jobs = [api.job(f"reminder number {n}") for n in range(3)]
    assert {j["status"] for j in jobs} == {"queued"}
    # Fair turns: alice's two slots were sent; the third job waits as a row (nothing to lose).
    held = {str(i) for i in Job.objects.filter(held=True).values_list("id", flat=True)}
    assert len(held) == 3 - settings.JOBS_IN_FLIGHT_PER_USER == 1

    stack.redis.stop()
    stack.redis.start()  # no persistence: the two messages are gone
    stack.start_worker()
    stack.start_beat()

    for job in jobs:
        assert api.wait(job["id"])["status"] == "succeeded"
    counts = {str(job.id): job.enqueue_count for job in Job.objects.all()}
    assert all(count >= 2 for job_id, count in counts.items() if job_id not in held), counts
    assert [counts[job_id] for job_id in held] == [1]  # sent once, when its turn came
    assert Clip.objects.count() == 3


def test_broker_down_while_the_web_enqueues_still_answers_202_and_runs_later(stack_factory, alice):
    stack = stack_factory(env={"JOB_QUEUED_DEADLINE_SECONDS": "2", "JOB_SWEEP_INTERVAL_SECONDS": "1"}).start()
    api = StackClient(stack, alice.token)
    api.upload_voice()
    stack.redis.stop()

    response = api.post("/api/tts/jobs/", json={"text": "the broker is down", "language": "en"})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert Job.objects.get(id=job_id).status == "queued"

    stack.redis.start()
    stack.stop("worker")  # reconnect cleanly to the new server
    stack.start_worker()
    stack.start_beat()
    assert api.wait(job_id)["status"] == "succeeded"


def test_poison_input_that_kills_its_worker_fails_after_bounded_attempts(stack_factory, alice):
    stack = stack_factory(env={"TONE_CRASH_MARKER": "☠", "JOB_MAX_ATTEMPTS": "2"}).start()
    api = StackClient(stack, alice.token)
    api.upload_voice()
    poison = api.job("poison pill ☠ here")

    done = api.wait(poison["id"], timeout=120)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "worker_lost"
    assert Job.objects.get(id=poison["id"]).attempts == 3  # two deaths, then refused
    # The worker survives and keeps serving.
    healthy = api.job("a normal reminder")
    assert api.wait(healthy["id"])["status"] == "succeeded"


def test_stale_running_job_is_given_back_then_failed_when_out_of_tries(db, alice):
    """The sweeper's rules on rows alone (no worker needed): a running job past the
    hard limit is re-queued; one that used all its tries fails `worker_lost`."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.audio_samples import wav_bytes
    from voice_tts.services.sweeper import jobs_sweep
    from voice_tts.services.voices import voice_create

    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    old = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + settings.JOB_RUNNING_GRACE_SECONDS + 5)
    retry = Job.objects.create(owner=alice, voice=voice, text="a", status="running", started_at=old, attempts=1)
    spent = Job.objects.create(owner=alice, voice=voice, text="b", status="running", started_at=old,
                               attempts=settings.JOB_MAX_ATTEMPTS)
    fresh = Job.objects.create(owner=alice, voice=voice, text="c", status="running", started_at=timezone.now(),
                               attempts=1)

    report = jobs_sweep()
    assert (report.released, report.failed) == (1, 1)
    retry.refresh_from_db(), spent.refresh_from_db(), fresh.refresh_from_db()
    assert retry.status == "queued" and retry.enqueue_count == 1 and retry.enqueued_at is not None
    assert spent.status == "failed" and spent.error_code == "worker_lost"
    assert fresh.status == "running"
