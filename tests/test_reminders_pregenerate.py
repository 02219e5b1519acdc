"""The pre-generation service, its management command, admin actions and triggers.

With a real worker where clips are made; the counting tests run without one (on the
non-transactional `db`, whose on-commit callbacks never fire: nothing is sent).
"""

from __future__ import annotations

import io
import time
import uuid

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.audio_samples import wav_bytes
from tests.conftest import worker_start, worker_stop
from voice_tts.models import Clip, Job, ReminderPhrase, Voice
from voice_tts.result_cache import ClipHit
from voice_tts.services.jobs import job_create
from voice_tts.services.reminders import reminders_on_model_loaded, reminders_pregenerate
from voice_tts.services.voices import voice_create

PHRASES = [("아침 약 드실 시간입니다", "ko"), ("점심 약 드실 시간입니다", "ko"), ("Time for your pills", "en")]


def phrases_for(user, texts=PHRASES) -> list[ReminderPhrase]:
    # Straight to the ORM: no background trigger, so the test alone decides what runs.
    return [ReminderPhrase.objects.create(owner=user, text=t, language=lang) for t, lang in texts]


def wait_jobs_finished(timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while Job.objects.exclude(status__in=Job.FINISHED).exists():
        if time.monotonic() > deadline:
            raise AssertionError(list(Job.objects.values("status", "text")))
        time.sleep(0.1)


@pytest.mark.worker
def test_batch_makes_each_missing_clip_once_and_a_rerun_does_nothing(worker, alice, bob):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    voice_create(owner_id=bob.id, data=wav_bytes(4.0))
    phrases_for(alice)
    phrases_for(bob, PHRASES[:1])
    ReminderPhrase.objects.create(owner=bob, text="inactive", language="en", is_active=False)
    syntheses = worker.syntheses()

    first = reminders_pregenerate()
    assert first.phrases == 4 and first.failed == 0 and first.no_voice == 0
    # The voice uploads scheduled a background run too: between the two, each phrase once.
    assert first.enqueued + first.in_flight + first.cached == 4
    wait_jobs_finished()
    assert set(Job.objects.values_list("status", flat=True)) == {"succeeded"}
    assert worker.syntheses() == syntheses + 4

    again = reminders_pregenerate()
    assert (again.enqueued, again.cached, again.in_flight) == (0, 4, 0)
    assert worker.syntheses() == syntheses + 4

    # Exactly the phrases' clips are pinned (the clip quota never evicts a reminder) ...
    assert Clip.objects.filter(pinned=True).count() == 4
    extra = job_create(owner_id=alice.id, text="Not a reminder", language="en")
    wait_jobs_finished()
    assert Clip.objects.get(jobs__id=extra.id).pinned is False
    # ... and a deleted phrase's clip becomes evictable again at the next run.
    ReminderPhrase.objects.filter(owner=bob).delete()
    reminders_pregenerate()
    assert Clip.objects.filter(pinned=True, owner=bob).count() == 0
    assert Clip.objects.filter(pinned=True, owner=alice).count() == 3

    # An interactive request for the same text is served from the batch's clip.
    hit = job_create(owner_id=alice.id, text="Time for your pills", language="en")
    assert isinstance(hit, ClipHit)
    assert Clip.objects.get(id=hit.clip.id).pinned


def test_dry_run_and_in_flight_jobs_enqueue_nothing(alice, bob, django_capture_on_commit_callbacks):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    phrases_for(alice)
    phrases_for(bob)  # bob has no voice

    dry = reminders_pregenerate(dry_run=True)
    assert (dry.phrases, dry.enqueued, dry.no_voice, dry.dry_run) == (6, 3, 3, True)
    assert Job.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=False) as sent:
        real = reminders_pregenerate(owner_ids=[alice.id])
    # Per job, once committed: its state kept for polling, then its message sent (fair turns).
    assert real.enqueued + real.cached == 3 and len(sent) == 2 * real.enqueued
    assert Job.objects.filter(owner=alice, status="queued").count() == real.enqueued

    # Still queued (no broker message was sent): a second run sees them in flight.
    with django_capture_on_commit_callbacks(execute=False) as sent:
        second = reminders_pregenerate(owner_ids=[alice.id])
    assert (second.enqueued, second.in_flight + second.cached) == (0, 3)
    assert sent == []


def test_a_phrase_the_job_path_refuses_is_counted_as_failed(alice, settings):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    phrases_for(alice, [("a long reminder text", "en"), ("ok", "en")])
    settings.JOB_TEXT_MAX_CHARS = 5
    summary = reminders_pregenerate(owner_ids=[alice.id], dry_run=False)
    assert summary.failed == 1 and "text_too_long" in summary.errors[0]


def test_progress_is_reported_per_batch_of_users(make_user):
    users = [make_user(f"user{i}") for i in range(5)]
    for user in users:
        phrases_for(user, PHRASES[:2])
    seen = []
    reminders_pregenerate(dry_run=True, batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (10, 10) and len(seen) == 5
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_command_dry_run_for_one_user(alice, bob):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    phrases_for(alice)
    phrases_for(bob)
    out, err = io.StringIO(), io.StringIO()
    call_command("pregenerate_reminders", "--dry-run", "--user", "alice", stdout=out, stderr=err)
    assert "[dry run] 3 phrases: would enqueue 3, already cached 0" in out.getvalue()
    assert "3/3 phrases" in err.getvalue()
    assert Job.objects.count() == 0
    with pytest.raises(CommandError, match="no such user: carol"):
        call_command("pregenerate_reminders", "--user", "carol", stdout=io.StringIO(), stderr=io.StringIO())


def test_command_enqueues_and_exits_1_on_failures(alice, settings, django_capture_on_commit_callbacks):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    phrases_for(alice, [("a long reminder text", "en"), ("ok", "en")])
    settings.JOB_TEXT_MAX_CHARS = 5
    out, err = io.StringIO(), io.StringIO()
    with django_capture_on_commit_callbacks(execute=False), pytest.raises(SystemExit) as exited:
        call_command("pregenerate_reminders", "--user", str(alice.id), stdout=out, stderr=err)
    assert exited.value.code == 1
    assert "failed 1" in out.getvalue() and "text_too_long" in err.getvalue()
    assert Job.objects.filter(text="ok").count() == 1


def test_admin_actions_for_users_and_phrases(client, make_user, alice, bob):
    admin_user = make_user("root")
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    voice_create(owner_id=bob.id, data=wav_bytes(4.0))
    phrases_for(alice)
    bob_phrase = phrases_for(bob, PHRASES[:1])[0]

    response = client.post("/admin/auth/user/", {"action": "pregenerate_for_users", "_selected_action": [alice.id]},
                           follow=True)
    assert response.status_code == 200
    assert "Reminder pre-generation: 3 phrases" in response.content.decode()
    assert set(Job.objects.values_list("owner_id", flat=True)) == {alice.id}

    response = client.post("/admin/voice_tts/reminderphrase/",
                           {"action": "pregenerate_for_phrase_owners", "_selected_action": [bob_phrase.id]},
                           follow=True)
    assert "Reminder pre-generation: 1 phrases" in response.content.decode()
    assert Job.objects.filter(owner=bob).count() == 1


def test_nightly_schedule_is_in_the_database_for_the_admin(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="voice_tts.tasks.reminders_pregenerate_task")
    assert task.enabled and task.crontab.hour == "2" and task.crontab.minute == "30"
    assert str(task.crontab.timezone) == "Asia/Seoul"


@pytest.mark.worker
def test_a_model_version_is_acted_on_once(worker):
    version = f"test-{uuid.uuid4().hex[:8]}"
    assert reminders_on_model_loaded(engine="espeak", model_version=version) is True
    assert reminders_on_model_loaded(engine="espeak", model_version=version) is False


@pytest.mark.worker
def test_interactive_job_is_taken_before_queued_batch_jobs(transactional_db, alice, settings):
    """Batch jobs are queued first, then interactive jobs; a single-process worker
    started afterwards takes the interactive ones first (queue order, not timing)."""
    run = uuid.uuid4().hex[:6]
    queues = {"SYNTHESIS_QUEUE": f"synthesis-{run}", "SYNTHESIS_BATCH_QUEUE": f"batch-{run}"}
    for name, value in queues.items():
        setattr(settings, name, value)
    settings.CELERY_QUEUES_ALL = [queues["SYNTHESIS_QUEUE"], queues["SYNTHESIS_BATCH_QUEUE"]]
    # A voice row without voice_create's background trigger: only this test enqueues.
    name = default_storage.save(f"voices/{alice.id}/{uuid.uuid4()}.wav", ContentFile(wav_bytes(4.0)))
    Voice.objects.create(owner=alice, audio=name, duration_seconds=4.0, sample_rate=44100)
    phrases_for(alice, [(f"Reminder number {n}", "en") for n in range(4)])

    assert reminders_pregenerate(owner_ids=[alice.id]).enqueued == 4
    # Two interactive jobs: kombu's default round-robin would serve one batch job
    # between them (it rotates the queue just served to the back).
    interactive = [job_create(owner_id=alice.id, text=text, language="en").text
                   for text in ("Where are my glasses?", "Call my daughter")]
    worker = worker_start(engine="espeak", concurrency=1, extra_env=queues)
    try:
        wait_jobs_finished()
    finally:
        worker_stop(worker)
    jobs = {job.text: job for job in Job.objects.all()}
    assert {job.status for job in jobs.values()} == {"succeeded"}
    batch_starts = [job.started_at for text, job in jobs.items() if text not in interactive]
    assert max(jobs[text].started_at for text in interactive) < min(batch_starts)
