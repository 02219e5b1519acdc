"""voice_tts.services.jobs.job_run, in this process with the real `tone` engine and
the real Redis lock: claiming, idempotent reruns, failures stored on the row."""

from __future__ import annotations

import pytest

from tests.audio_samples import wav_bytes
from voice_tts.models import Clip, Job
from voice_tts.services.jobs import job_claim, job_run
from voice_tts.services.voices import voice_create
from voice_tts.worker import runtime


@pytest.fixture
def tone_engine(monkeypatch):
    runtime.engine_start(name="tone", queues=["synthesis"])
    yield runtime.engine_get()


@pytest.fixture
def queued_job(alice):
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    return Job.objects.create(owner=alice, voice=voice, text="take your pills", language="en")


def test_run_synthesises_once_and_a_rerun_is_a_no_op(tone_engine, queued_job):
    job_run(job_id=queued_job.id, task_id="task-1")
    job = Job.objects.get(id=queued_job.id)
    assert job.status == "succeeded" and not job.cache_hit and job.clip is not None
    assert job.attempts == 1 and job.processing_time_ms is not None
    finished_at = job.finished_at

    job_run(job_id=queued_job.id, task_id="task-1")  # a duplicate delivery
    job_run(job_id=queued_job.id, task_id="task-2")
    job.refresh_from_db()
    assert job.finished_at == finished_at and job.attempts == 1
    assert Clip.objects.count() == 1


def test_claim_is_exclusive_but_a_redelivered_message_takes_its_job_back(queued_job):
    assert job_claim(job_id=queued_job.id, task_id="task-a")
    assert not job_claim(job_id=queued_job.id, task_id="task-b")
    # The worker that ran task-a died; the broker redelivers the same message.
    assert job_claim(job_id=queued_job.id, task_id="task-a")
    assert Job.objects.get(id=queued_job.id).attempts == 2


def test_engine_exception_fails_the_job_with_a_code(tone_engine, queued_job, monkeypatch):
    def explode(*args, **kwargs):
        raise ValueError("poison input")

    monkeypatch.setattr(tone_engine, "synthesize", explode)  # fault injection at the engine boundary
    job_run(job_id=queued_job.id, task_id="t")
    job = Job.objects.get(id=queued_job.id)
    assert (job.status, job.error_code) == ("failed", "engine_failed")
    assert "poison input" in job.error_message
    assert Clip.objects.count() == 0


def test_engine_that_failed_to_load_fails_jobs_clearly(queued_job, monkeypatch):
    from workers.engines import registry

    monkeypatch.setitem(registry.ENGINE_PATHS, "broken", "workers.engines.no_such_module.Engine")
    runtime.engine_start(name="broken", queues=["synthesis"])
    job_run(job_id=queued_job.id, task_id="t")
    job = Job.objects.get(id=queued_job.id)
    assert job.status == "failed" and job.error_code == "engine_load_failed"
    assert "not ready" in job.error_message


def test_a_second_job_for_the_same_clip_is_a_cache_hit(tone_engine, queued_job, alice):
    job_run(job_id=queued_job.id, task_id="t1")
    twin = Job.objects.create(owner=alice, voice=queued_job.voice, text=queued_job.text, language="en")
    job_run(job_id=twin.id, task_id="t2")
    twin.refresh_from_db()
    assert twin.status == "succeeded" and twin.cache_hit
    assert twin.clip_id == Job.objects.get(id=queued_job.id).clip_id
