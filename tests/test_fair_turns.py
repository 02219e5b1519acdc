"""Fair turns (voice_tts/services/turns.py): the database is the queue of record, and each user
has at most JOBS_IN_FLIGHT_PER_USER jobs handed to the broker at once.

The release rules are checked on the rows and on the messages the real Redis receives (private
queue names nobody consumes); what a real worker makes of them (a lone user's job after at most
a flood's slots, the beat's safety net, a worker killed with jobs held) runs a real `celery worker`
with the `tone` engine, the stand-in for a model (TONE_DELAY_SECONDS makes it slow). Every
before/after is read from the order of events on the rows (released, started, finished), never
from how long something took.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from tests.audio_samples import wav_bytes
from tests.conftest import worker_start, worker_stop
from tests.stack import StackClient
from voice_tts.models import Clip, Job, Voice
from voice_tts.redis_client import redis_client, redis_key
from voice_tts.services import turns
from voice_tts.services.broker import broker_messages_read, broker_reconcile
from voice_tts.services.jobs import job_claim, job_create, job_fail, job_release
from voice_tts.services.sweeper import jobs_sweep
from voice_tts.services.turns import jobs_held_count, jobs_release


def private_queues(settings: Any) -> dict[str, str]:
    """Queue names of this test alone: the session's worker never takes these messages."""
    run = uuid.uuid4().hex[:6]
    queues = {"SYNTHESIS_QUEUE": f"synthesis-{run}", "SYNTHESIS_BATCH_QUEUE": f"batch-{run}"}
    for name, value in queues.items():
        setattr(settings, name, value)
    settings.CELERY_QUEUES_ALL = [queues["SYNTHESIS_QUEUE"], queues["SYNTHESIS_BATCH_QUEUE"]]
    return queues


def voice_for(user: Any) -> Voice:
    # Straight to the ORM: voice_create would trigger pre-generation, and only the test enqueues here.
    name = default_storage.save(f"voices/{user.id}/{uuid.uuid4()}.wav", ContentFile(wav_bytes(4.0)))
    return Voice.objects.create(owner=user, audio=name, duration_seconds=4.0, sample_rate=44100)


def held_job(user: Any, text: str, *, batch: bool = False, **fields: Any) -> Job:
    """A job as job_create writes it, without job_create's release after the commit."""
    voice = Voice.objects.get(owner=user, is_active=True)
    return Job.objects.create(owner=user, voice=voice, text=text, language="en", held=True,
                              priority=Job.Priority.BATCH if batch else Job.Priority.INTERACTIVE,
                              queue=django_settings.SYNTHESIS_BATCH_QUEUE if batch else "", **fields)


def broker_job_ids(queues: dict[str, str]) -> set[str]:
    return broker_messages_read(client=redis_client(), queues=queues.values(), limit=10_000).job_ids


def released_ids(user: Any) -> set[str]:
    """The user's jobs handed to the broker and not finished."""
    rows = Job.objects.filter(owner=user, held=False, status__in=Job.IN_FLIGHT)
    return {str(i) for i in rows.values_list("id", flat=True)}


def wait_jobs_finished(timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while Job.objects.exclude(status__in=Job.FINISHED).exists():
        if time.monotonic() > deadline:
            raise AssertionError(list(Job.objects.values("status", "held", "text")))
        time.sleep(0.1)


def most_in_flight(jobs: list[Job]) -> int:
    """The most of these jobs that were handed to the broker and not finished at one moment:
    checked at each release (the only moment the count grows), from the rows' own timestamps."""
    return max(
        sum(1 for other in jobs if other.released_at <= job.released_at and other.finished_at > job.released_at)
        for job in jobs
    )


def test_jobs_beyond_the_users_slots_wait_as_rows_and_clients_see_queued(
    db, alice, alice_api, settings, django_capture_on_commit_callbacks
):
    queues = private_queues(settings)
    voice_for(alice)
    with django_capture_on_commit_callbacks(execute=True):
        ids = [str(job_create(owner_id=alice.id, text=f"Reminder {n}", language="en").id) for n in range(5)]

    # The two oldest went to the broker (each one message), the rest are rows only.
    assert released_ids(alice) == set(ids[:2])
    assert broker_job_ids(queues) == set(ids[:2])
    assert jobs_held_count(owner_id=alice.id) == 3
    assert set(Job.objects.filter(held=True).values_list("enqueue_count", flat=True)) == {0}
    # A held job is `queued` to its owner, like any other waiting job.
    assert alice_api.get(f"/api/tts/jobs/{ids[4]}/").json()["status"] == "queued"


def test_a_pass_serves_users_round_robin_interactive_before_batch(
    db, make_user, settings, django_capture_on_commit_callbacks
):
    queues = private_queues(settings)
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    for user in (alice, bob, carol):
        voice_for(user)
    alice_batch = [held_job(alice, f"Alice nightly {n}", batch=True) for n in range(3)]
    alice_now = held_job(alice, "Alice asks now")  # created last, goes first: interactive
    bob_jobs = [held_job(bob, f"Bob asks {n}") for n in range(3)]
    carol_batch = [held_job(carol, f"Carol nightly {n}", batch=True) for n in range(2)]
    # Who was served last: alice a minute ago, bob two minutes ago, carol not for a long time.
    now = timezone.now()
    for user, ago in ((alice, 60), (bob, 120)):
        Job.objects.create(owner=user, text="earlier", status=Job.Status.SUCCEEDED,
                           released_at=now - timedelta(seconds=ago), finished_at=now - timedelta(seconds=ago - 1))

    with django_capture_on_commit_callbacks(execute=True):
        first = jobs_release(limit=1)
    # One job per pass at most: it goes to the user served longest ago, her batch job (all she has).
    assert first.owners == [carol.id] and released_ids(carol) == {str(carol_batch[0].id)}

    with django_capture_on_commit_callbacks(execute=True):
        second = jobs_release()
    # Then bob (two minutes), then alice (one minute). Carol has her one batch slot in use
    # (JOBS_IN_FLIGHT_PER_USER - 1: her next request finds the other slot free).
    assert second.owners == [bob.id, alice.id]
    assert released_ids(bob) == {str(job.id) for job in bob_jobs[:2]}
    # Alice's interactive job before her older batch jobs; one batch job in her second slot.
    assert released_ids(alice) == {str(alice_now.id), str(alice_batch[0].id)}
    assert released_ids(carol) == {str(carol_batch[0].id)}
    # Each released job has exactly one message, on its own queue.
    messages = broker_job_ids(queues)
    assert messages == released_ids(alice) | released_ids(bob) | released_ids(carol)
    batch_messages = broker_job_ids({"batch": queues["SYNTHESIS_BATCH_QUEUE"]})
    assert batch_messages == {str(alice_batch[0].id), str(carol_batch[0].id)}
    # A pass right after changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_release().released == 0


def test_a_finished_job_releases_its_owners_next_turn_and_a_transient_retry_keeps_its_slot(
    db, alice, settings, django_capture_on_commit_callbacks
):
    queues = private_queues(settings)
    voice_for(alice)
    jobs = [held_job(alice, f"Turn {n}") for n in range(4)]
    with django_capture_on_commit_callbacks(execute=True):
        jobs_release()
    assert released_ids(alice) == {str(jobs[0].id), str(jobs[1].id)}

    # A transient error gives the claim back, not the slot: the job is still in flight.
    assert job_claim(job_id=jobs[0].id, task_id="task-0")
    assert job_release(job_id=jobs[0].id, task_id="task-0", owner_id=alice.id)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_release().released == 0
    assert jobs_held_count(owner_id=alice.id) == 2

    # A finished job (failed, here) frees its slot, and its owner's next job goes out at once.
    assert job_claim(job_id=jobs[0].id, task_id="task-0")
    with django_capture_on_commit_callbacks(execute=True):
        job_fail(job=Job.objects.get(id=jobs[0].id), code="engine_failed", message="test")
    assert released_ids(alice) == {str(job.id) for job in jobs[1:3]}
    assert broker_job_ids(queues) == {str(job.id) for job in jobs[:3]}


def test_a_held_job_is_never_claimed_by_a_stray_message(db, alice):
    voice_for(alice)
    job = held_job(alice, "Not my turn yet")
    assert not job_claim(job_id=job.id, task_id="stray")
    assert Job.objects.get(id=job.id).status == Job.Status.QUEUED


def test_the_sweeper_and_the_broker_watch_leave_held_jobs_alone(
    db, alice, settings, django_capture_on_commit_callbacks
):
    """Held jobs were never sent: not lost, however long they wait. Released jobs whose message
    is gone are sent again as before."""
    queues = private_queues(settings)
    voice_for(alice)
    jobs = [held_job(alice, f"Old reminder {n}") for n in range(4)]
    long_ago = timezone.now() - timedelta(days=1)
    Job.objects.filter(id__in=[job.id for job in jobs]).update(created_at=long_ago)
    # Released long ago, their messages lost (never sent here: the callbacks are not run).
    jobs_release()
    Job.objects.filter(held=False).update(released_at=long_ago, enqueued_at=long_ago)
    sent = sorted(released_ids(alice))
    held = [str(job.id) for job in jobs if str(job.id) not in sent]
    assert len(sent) == 2 and len(held) == 2

    with django_capture_on_commit_callbacks(execute=True):
        report = broker_reconcile()
    assert (report.checked, report.resent) == (2, 2)
    assert broker_job_ids(queues) == set(sent)

    Job.objects.filter(held=False).update(enqueued_at=long_ago)
    report = jobs_sweep()
    assert (report.requeued, report.failed) == (2, 0)
    rows = {str(job.id): job for job in Job.objects.all()}
    assert [(rows[i].status, rows[i].held, rows[i].enqueue_count) for i in held] == [("queued", True, 0)] * 2
    assert [rows[i].enqueue_count for i in sent] == [3, 3]


def test_job_create_releases_inside_its_own_transaction_and_keeps_the_state_before_the_message(
    transactional_db, alice, settings, monkeypatch,
):
    """The row and its release are committed together (no statement between the INSERT and the releasing UPDATE
    runs outside the creating transaction: the row is never committed `held`, and no second transaction sits on
    the path to the worker); the `queued` state is in Redis before the message is in the broker."""
    queues = private_queues(settings)
    voice_for(alice)
    client = redis_client()
    statements: list[tuple[str, bool]] = []
    events: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, connection.in_atomic_block))
        return execute(sql, params, many, context)

    real_send = turns.job_synthesis_send

    def send_observed(**kwargs: Any) -> bool:  # the real send, with what Redis holds at that moment noted
        kept = client.exists(redis_key("job", str(kwargs["job_id"])))
        events.append("send, state kept" if kept else "send, no state")
        return real_send(**kwargs)

    monkeypatch.setattr(turns, "job_synthesis_send", send_observed)
    with connection.execute_wrapper(record):
        job = job_create(owner_id=alice.id, text="Released at once.", language="en")
    inserted = next(i for i, (sql, _) in enumerate(statements) if sql.startswith('INSERT INTO "voice_tts_job"'))
    released = next(i for i, (sql, _) in enumerate(statements)
                    if sql.startswith('UPDATE "voice_tts_job"') and '"held" = ' in sql.split("WHERE")[0])
    assert inserted < released
    assert all(in_atomic for _, in_atomic in statements[inserted:released + 1])
    job.refresh_from_db()
    assert not job.held and job.enqueued_at is not None
    assert events == ["send, state kept"]
    assert str(job.id) in broker_job_ids(queues)


def test_concurrent_passes_never_exceed_the_slots(transactional_db, alice, settings):
    """Eight passes at once (the web, workers finishing, beat): each pass holds the release lock,
    so none of them sees a slot another one just filled."""
    queues = private_queues(settings)
    voice_for(alice)
    jobs = [held_job(alice, f"Busy {n}") for n in range(10)]
    start = threading.Barrier(8)
    results: list[int] = []
    errors: list[BaseException] = []

    def one_pass() -> None:
        try:
            start.wait()
            results.append(jobs_release().released)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one_pass) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(results) == [0] * 7 + [settings.JOBS_IN_FLIGHT_PER_USER]
    assert released_ids(alice) == {str(job.id) for job in jobs[:settings.JOBS_IN_FLIGHT_PER_USER]}
    assert broker_job_ids(queues) == released_ids(alice)


@pytest.mark.worker
def test_one_users_flood_delays_another_users_job_by_at_most_its_slots(transactional_db, make_user, settings):
    """Alice sends twelve jobs, then Bob one, with a single worker process. First come, first
    served would run all of Alice's first; with fair turns Bob's job is the third to start."""
    queues = private_queues(settings)
    alice, bob = make_user("alice"), make_user("bob")
    voice_for(alice)
    voice_for(bob)
    flood = [str(job_create(owner_id=alice.id, text=f"Alice reminder {n}", language="en").id) for n in range(12)]
    lone = str(job_create(owner_id=bob.id, text="Bob's only reminder", language="en").id)
    assert not Job.objects.get(id=lone).held  # Bob's slots were free: it went out at once

    worker = worker_start(engine="tone", concurrency=1, extra_env={**queues, "TONE_DELAY_SECONDS": "0.1"},
                          queues=list(queues.values()))
    try:
        wait_jobs_finished()
    finally:
        worker_stop(worker)
    rows = list(Job.objects.order_by("started_at"))
    assert {job.status for job in rows} == {"succeeded"}
    started = [str(job.id) for job in rows]
    # Behind Bob's job: only what Alice already had in the broker (her slots).
    assert started.index(lone) <= settings.JOBS_IN_FLIGHT_PER_USER
    # Alice's own jobs ran in the order she sent them (a /v1 stream's sentences do too).
    assert [job_id for job_id in started if job_id in flood] == flood
    # Never more than her slots in flight, and every job sent exactly once.
    assert most_in_flight([job for job in rows if job.owner_id == alice.id]) == settings.JOBS_IN_FLIGHT_PER_USER
    assert {job.enqueue_count for job in rows} == {1}


@pytest.mark.worker
def test_beat_releases_held_jobs_when_every_other_release_was_missed(stack_factory, alice):
    """Jobs held with no release to come (as if the web died between the commit and its release):
    they stay rows until beat's pass, then run, once each."""
    stack = stack_factory(env={"JOBS_RELEASE_SECONDS": "0.5"}).start()
    api = StackClient(stack, alice.token)
    assert api.upload_voice().status_code == 201
    jobs = [held_job(alice, f"Forgotten reminder {n}") for n in range(3)]
    assert jobs_held_count(owner_id=alice.id) == 3
    beat_started = timezone.now()

    stack.start_beat()
    for job in jobs:
        assert api.wait(str(job.id))["status"] == "succeeded"
    rows = list(Job.objects.filter(id__in=[job.id for job in jobs]))
    assert {row.enqueue_count for row in rows} == {1}
    # Nothing released them before beat did: the first two (alice's slots) in one pass, the third
    # when one of them finished.
    first_pass = sorted(row.released_at for row in rows)[:2]
    assert first_pass[0] == first_pass[1] >= beat_started
    assert most_in_flight(rows) == django_settings.JOBS_IN_FLIGHT_PER_USER


@pytest.mark.worker
def test_a_worker_killed_with_jobs_held_loses_nothing_and_runs_each_once(stack_factory, alice):
    stack = stack_factory(env={"TONE_DELAY_SECONDS": "2"}).start()
    api = StackClient(stack, alice.token)
    assert api.upload_voice().status_code == 201
    ids = [api.job(f"Take pill number {n}")["id"] for n in range(4)]
    api.wait(ids[0], until=("running",))
    assert jobs_held_count(owner_id=alice.id) == 2
    child = next(w["pid"] for w in stack.workers() if w.get("ready"))

    os.kill(child, signal.SIGKILL)  # the process running the first synthesis dies at once

    for job_id in ids:
        assert api.wait(job_id, timeout=120)["status"] == "succeeded"
    rows = {str(job.id): job for job in Job.objects.filter(id__in=ids)}
    # The killed job was redelivered (same message, claimed again) and kept its slot meanwhile.
    assert rows[ids[0]].attempts == 2
    assert [rows[i].attempts for i in ids[1:]] == [1, 1, 1]
    assert {job.enqueue_count for job in rows.values()} == {1}
    assert most_in_flight(list(rows.values())) == django_settings.JOBS_IN_FLIGHT_PER_USER
    assert Clip.objects.count() == 4
