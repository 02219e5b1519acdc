"""Priority on one worker process: interactive work before the nightly batch.

Two things decide it, both tested here on a real `celery worker -c 1` (the `tone` engine, the
stand-in for a model) from the order of events on the rows, never from durations:

- the broker: kombu's Redis transport with `queue_order_strategy=priority` (settings) polls the
  worker's queues in its `-Q` order on every fetch (BRPOP on the lists in that order), instead of
  kombu's default round-robin, which moves the queue just served to the back;
- fair turns (services.turns): each finished job releases the next turns before its message is
  acknowledged, so the worker's next fetch already sees them.

docs/operations.md#fair-turns-and-priority explains both.
"""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from tests.conftest import worker_start, worker_stop
from tests.test_fair_turns import private_queues, voice_for, wait_jobs_finished
from voice_tts.models import Job
from voice_tts.services.jobs import job_create

pytestmark = pytest.mark.worker


def batch_flood(make_user, queues: dict[str, str], *, users: int = 3, each: int = 3) -> list[str]:
    """Nightly batch jobs of several households (as services.reminders makes them): one of each
    user's is in the batch queue (their batch slot), the rest wait as rows."""
    ids = []
    for n in range(users):
        user = make_user(f"household{n}")
        voice_for(user)
        ids += [str(job_create(owner_id=user.id, text=f"Household {n} nightly {k}", language="en",
                               queue=queues["SYNTHESIS_BATCH_QUEUE"]).id) for k in range(each)]
    assert Job.objects.filter(id__in=ids, held=False).count() == users
    return ids


@pytest.mark.parametrize("interactive_queue_first", [True, False], ids=["-Q synthesis,batch", "-Q batch,synthesis"])
def test_the_q_order_is_the_priority_order(transactional_db, make_user, settings, interactive_queue_first):
    """Both queues hold messages when the worker starts. With the interactive queue first, its job
    runs first; with the batch queue first, it runs last: every finished batch job released the
    next one before the worker fetched again, so the batch queue was never empty until the end."""
    queues = private_queues(settings)
    batch = batch_flood(make_user, queues)
    dave = make_user("dave")
    voice_for(dave)
    asked = str(job_create(owner_id=dave.id, text="Dave asks now", language="en").id)
    order = [queues["SYNTHESIS_QUEUE"], queues["SYNTHESIS_BATCH_QUEUE"]]
    worker = worker_start(engine="tone", concurrency=1, extra_env={**queues, "TONE_DELAY_SECONDS": "0.05"},
                          queues=order if interactive_queue_first else order[::-1])
    try:
        wait_jobs_finished()
    finally:
        worker_stop(worker)
    started = [str(i) for i in Job.objects.order_by("started_at").values_list("id", flat=True)]
    assert sorted(started) == sorted([*batch, asked])
    assert started.index(asked) == (0 if interactive_queue_first else len(batch))


def test_an_interactive_job_sent_during_a_batch_run_goes_next(transactional_db, make_user, settings):
    """A batch run is under way on one worker process; a caregiver's job arrives. No batch job
    starts between the moment its message is in the broker and its own start."""
    queues = private_queues(settings)
    batch = batch_flood(make_user, queues, users=3, each=4)
    worker = worker_start(engine="tone", concurrency=1, extra_env={**queues, "TONE_DELAY_SECONDS": "0.5"},
                          queues=[queues["SYNTHESIS_QUEUE"], queues["SYNTHESIS_BATCH_QUEUE"]])
    try:
        deadline = time.monotonic() + 60
        while not Job.objects.filter(id__in=batch, status=Job.Status.RUNNING).exists():
            assert time.monotonic() < deadline, "no batch job started"
            time.sleep(0.05)
        dave = make_user("dave")
        voice_for(dave)
        # transactional_db: autocommit, so job_create's release has sent the message when it returns.
        asked = str(job_create(owner_id=dave.id, text="Dave asks now", language="en").id)
        sent_at = timezone.now()
        wait_jobs_finished()
    finally:
        worker_stop(worker)
    rows = {str(job.id): job for job in Job.objects.all()}
    assert {job.status for job in rows.values()} == {"succeeded"}
    own_start = rows[asked].started_at
    assert [i for i in batch if sent_at < rows[i].started_at < own_start] == []
    # The flood was still there: batch jobs ran after it.
    assert any(rows[i].started_at > own_start for i in batch)
