"""A /v1/audio/speech client that hangs up mid-stream ends its answer at once (issue 25 item 1).

Live stack: gunicorn with the shipped stream server's gunicorn_stream_conf.py (gthread), a private Redis, the
test database, one Celery worker process with the `tone` engine sleeping TONE_SECONDS per sentence (a GPU's
pace). Nothing mocked.

What "at once" means is proven by the order of events, never by a clock: Alice's five-sentence stream is waiting
for its first sentence (running in the worker: her first two sentences are sent, JOBS_IN_FLIGHT_PER_USER = 2,
and the other three are held in her turn) when she closes the connection. Her three held sentences are then
cancelled (`speech_abandoned`) while the first is still running, so the stream's thread saw the hang-up and ended
before the first sentence was ready, which is the first moment it would otherwise have written (and failed) on
the socket. The two sentences already with the worker finish as cached clips (the choice: their synthesis is
under way; a retry of the same text gets them from the cache), and no cancelled sentence ever starts.
Bob's stream, at the same time on the same web, is untouched.
"""

from __future__ import annotations

import http.client
import io
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import soundfile

from tests.stack import ServiceStack, speech_user_enrol
from voice_tts.models import Job

TONE_SECONDS = 4.0
SENTENCES = 5


def _text(tag: str) -> str:
    return " ".join(f"Take pill {n} of {tag} now." for n in range(SENTENCES))


@pytest.fixture(scope="module")
def stack(django_db_setup: Any, django_db_blocker: Any) -> Iterator[ServiceStack]:
    with django_db_blocker.unblock():
        stack = ServiceStack(engine="tone", concurrency=2, env={
            # The shipped stream server's configuration (gunicorn_stream_conf.py: gthread), which serves /v1.
            "GUNICORN_CMD_ARGS": "-c medicine_project/gunicorn_stream_conf.py",
            "TONE_DELAY_SECONDS": str(TONE_SECONDS),
            "THROTTLE_SPEECH_RATE": "100000/min",
            "THROTTLE_JOBS_RATE": "100000/min",
        })
        try:
            yield stack.start()
        finally:
            stack.shutdown()


def _until(condition: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _jobs(owner: Any, tag: str) -> list[Job]:
    return sorted(Job.objects.filter(owner=owner, text__contains=tag), key=lambda job: job.text)


def test_a_client_that_hangs_up_ends_its_stream_at_once_and_its_held_sentences_are_not_made(
        stack, transactional_db, make_user):
    alice = speech_user_enrol(stack, make_user, "a")
    bob = speech_user_enrol(stack, make_user, "b")
    tag = uuid.uuid4().hex[:8]
    body = json.dumps({"model": "tts-1", "voice": "alloy", "input": _text(tag), "response_format": "mp3"})
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
    connection.request("POST", "/v1/audio/speech", body=body,
                       headers={"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json"})
    # Her first sentence is with the worker; the stream waits for it (no byte of the answer has been sent).
    first_running = _until(lambda: [job for job in _jobs(alice, tag) if job.status == Job.Status.RUNNING],
                           "Alice's first sentence to run")
    jobs = _jobs(alice, tag)
    assert len(jobs) == SENTENCES
    held = [job for job in jobs if job.held]
    assert len(held) == SENTENCES - 2  # her turn: two sent, three held

    # Bob streams beside her, on the same web.
    pool = ThreadPoolExecutor(max_workers=1)
    bob_answer = pool.submit(lambda: bob.sdk.audio.speech.create(
        model="tts-1", voice="alloy", input=f"Bob's pill {tag}.", response_format="mp3").content)

    connection.close()  # Alice hangs up
    _until(lambda: Job.objects.filter(id__in=[job.id for job in held], error_code="speech_abandoned").count()
           == len(held), "Alice's held sentences to be cancelled")
    # ... while the sentence the stream was waiting for is still being made: the hang-up was seen before the
    # stream's next write.
    first_running[0].refresh_from_db()
    assert first_running[0].status == Job.Status.RUNNING

    # The two sentences with the worker finish, as clips for a retry; the cancelled ones never start.
    sent = [job for job in jobs if not job.held]
    _until(lambda: Job.objects.filter(id__in=[job.id for job in sent], status=Job.Status.SUCCEEDED).count() == 2,
           "Alice's sent sentences to finish")
    for job in Job.objects.filter(id__in=[job.id for job in held]):
        assert (job.status, job.started_at, job.held) == (Job.Status.FAILED, None, False)
    # Through the jobs API too, as her own jobs (and not Bob's).
    answer = alice.client.get(f"/api/tts/jobs/{held[0].id}/")
    assert (answer.status_code, answer.json()["status"], answer.json()["error"]["code"]) == (
        200, "failed", "speech_abandoned")
    assert bob.client.get(f"/api/tts/jobs/{held[0].id}/").status_code == 404

    # Bob's stream delivers his whole sentence, and none of his jobs was touched.
    audio = bob_answer.result(timeout=60)
    pool.shutdown()
    samples, rate = soundfile.read(io.BytesIO(audio), dtype="float32")
    assert len(samples) / rate > 0.1
    assert not Job.objects.filter(owner=bob, error_code="speech_abandoned").exists()


def test_a_stream_read_to_its_end_cancels_nothing(stack, transactional_db, make_user):
    """The control: the same five sentences, read whole, are all made (so the test above can fail)."""
    alice = speech_user_enrol(stack, make_user, "c")
    tag = uuid.uuid4().hex[:8]
    audio = alice.sdk.audio.speech.create(model="tts-1", voice="alloy", input=_text(tag), response_format="mp3")
    samples, rate = soundfile.read(io.BytesIO(audio.content), dtype="float32")
    assert len(samples) / rate > SENTENCES * 0.1
    assert [job.status for job in _jobs(alice, tag)] == [Job.Status.SUCCEEDED] * SENTENCES
