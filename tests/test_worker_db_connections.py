"""Workers keep their database connection across tasks (Celery's fixup opens one per task
unless CELERY_DB_REUSE_MAX is set) and drop it after a task that did not end cleanly."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db import connection

from tests.audio_samples import wav_bytes
from voice_tts.models import Job
from voice_tts.services.jobs import job_create
from voice_tts.services.voices import voice_create
from voice_tts.worker import signals as lifecycle


def _sessions_opened() -> int:
    # PostgreSQL counts every session ever opened on a database (PG 14+).
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def test_workers_are_configured_to_keep_connections():
    from medicine_project.celery import app

    assert settings.CELERY_DB_REUSE_MAX > 0
    assert app.conf.get("CELERY_DB_REUSE_MAX") == settings.CELERY_DB_REUSE_MAX  # the key Celery's fixup reads


def test_a_real_worker_runs_many_jobs_on_one_connection_per_process(worker, alice):
    if connection.vendor != "postgresql":
        pytest.skip("counts sessions in pg_stat_database; run with DATABASE_URL=postgres://…")
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    # Warm up: each of the worker's processes may open its connection now.
    warm = [job_create(owner_id=alice.id, text=f"warm up {i}", language="en").id for i in range(4)]
    _wait(warm)
    before = _sessions_opened()
    jobs = [job_create(owner_id=alice.id, text=f"take pill number {i}", language="en").id for i in range(12)]
    _wait(jobs)
    opened = _sessions_opened() - before
    assert Job.objects.filter(id__in=jobs, status="succeeded", voice=voice).count() == 12
    # Celery's default opened (at least) one per task: 12 here.
    assert opened <= 2, f"{opened} new database sessions for 12 jobs"


def test_a_worker_whose_connection_was_cut_reconnects_for_the_next_job(worker, alice):
    if connection.vendor != "postgresql":
        pytest.skip("cuts the worker's PostgreSQL sessions with pg_terminate_backend")
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    first = [job_create(owner_id=alice.id, text=f"before the cut {i}", language="en").id for i in range(4)]
    _wait(first)
    # What a database restart, a failover or a proxy's idle timeout does to a kept connection.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 1, "the worker kept no connection to cut"
    after = [job_create(owner_id=alice.id, text=f"after the cut {i}", language="en").id for i in range(4)]
    _wait(after)
    assert Job.objects.filter(id__in=after, status="succeeded").count() == 4


def _wait(job_ids: list) -> None:
    deadline = time.monotonic() + 120
    while Job.objects.filter(id__in=job_ids).exclude(status__in=Job.FINISHED).exists():
        assert time.monotonic() < deadline, "jobs did not finish"
        time.sleep(0.1)


@pytest.mark.parametrize("state", ["FAILURE", "RETRY", "REVOKED"])
def test_a_task_that_did_not_end_cleanly_leaves_no_connection_behind(transactional_db, state):
    connection.ensure_connection()
    lifecycle._db_connections_dropped_after_trouble(state="SUCCESS")
    assert connection.connection is not None, "a clean task keeps its connection"
    lifecycle._db_connections_dropped_after_trouble(state=state)
    assert connection.connection is None
    assert Job.objects.count() == 0  # and the next query simply opens a new one


def test_before_a_task_an_obsolete_connection_is_replaced(transactional_db, monkeypatch):
    connection.ensure_connection()
    first = connection.connection
    lifecycle._db_connections_checked()
    assert connection.connection is first, "within CONN_MAX_AGE the connection is kept"
    monkeypatch.setattr(connection, "close_at", time.monotonic() - 1)  # past CONN_MAX_AGE
    lifecycle._db_connections_checked()
    assert connection.connection is None
