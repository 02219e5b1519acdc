"""A /v1 stream waiting for a sentence's job is woken by the worker's push (result_cache.job_finished_signal), and
finishes through its fallback when the push is lost.

The stream (services/speech.py `speech_audio`) runs in a thread of this process; the job runs in the main thread
through the worker's own service (`job_run`, the real `tone` engine, the real Redis). The proof is the order of
events: the stream is seen blocked in Redis (CLIENT LIST shows its BLMOVE) before the job runs, and the stream's
wait reports how it ended (woken by the push, or its fallback interval passed). With the fallback set to 60 s, a
stream that finished without waiting it out was woken by the push; with the push dropped (fault injection), the
stream still finishes, after a fallback of 50 ms.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import requests
from django.db import connection

from tests.audio_samples import assert_one_file, wav_bytes
from tests.stack import ServiceStack, StackClient
from voice_tts import result_cache
from voice_tts.models import ClipEncoding, Job
from voice_tts.redis_client import redis_client, redis_key
from voice_tts.services import clip_formats
from voice_tts.services import speech as speech_service
from voice_tts.services.device_formats import device_audio_format_record
from voice_tts.services.jobs import job_run
from voice_tts.services.speech import Speech, SpeechSentence, speech_audio
from voice_tts.services.tokens import device_create
from voice_tts.services.voices import voice_create
from voice_tts.worker import runtime

TEXT = "Take your pills now."


@pytest.fixture
def tone(transactional_db: Any) -> Any:
    runtime.engine_start(name="tone", queues=["synthesis"])
    return runtime.engine_get()


@pytest.fixture
def queued(tone: Any, alice: Any) -> tuple[Job, Speech]:
    """A one-sentence speech whose job is queued and that no worker takes (no message is sent for it)."""
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    job = Job.objects.create(owner=alice, voice=voice, text=TEXT, language="en")
    speech = Speech(owner_id=alice.id, characters=len(TEXT),
                    sentences=(SpeechSentence(text=TEXT, language="en", clip_id=None, job_id=job.id),))
    return job, speech


@pytest.fixture
def wakes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each of the stream's waits returned (True: woken by the push), recorded around the real wait."""
    results: list[bool] = []

    def recorded(**kwargs: Any) -> bool:
        woken = result_cache.job_finished_wait(**kwargs)
        results.append(woken)
        return woken

    monkeypatch.setattr(speech_service, "job_finished_wait", recorded)
    return results


class Stream(threading.Thread):
    def __init__(self, speech: Speech) -> None:
        super().__init__(daemon=True)
        self.speech = speech
        self.body: bytes | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.body = b"".join(speech_audio(speech=self.speech, audio_format="wav", wait_seconds=120))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which raises it
            self.error = exc
        finally:
            connection.close()


def _blocked_on(job: Job) -> None:
    """Return once a Redis client is blocked in BLMOVE (this process's stream: nothing else here uses it)."""
    for _ in range(3000):  # a guard against a stream that never waits, not a timing
        if any(client.get("cmd") == "blmove" and "b" in client.get("flags", "")
               for client in redis_client().client_list()):
            return
        time.sleep(0.01)
    raise AssertionError(f"the stream never blocked waiting for job {job.id}")


def test_a_waiting_stream_is_woken_by_the_push(queued, wakes, settings):
    job, speech = queued
    settings.SPEECH_WAKE_FALLBACK_SECONDS = 60  # without the push the stream would wait a minute
    stream = Stream(speech)
    stream.start()
    _blocked_on(job)
    assert stream.is_alive() and wakes == []  # waiting: the job has not run

    job_run(job_id=job.id, task_id="task-1")
    stream.join(30)  # a guard: a stream not woken would still be waiting out its 60 s fallback
    assert not stream.is_alive(), "the stream was not woken by the job's push"
    if stream.error:
        raise stream.error
    assert wakes == [True]  # one wait, ended by the push
    assert_one_file(stream.body, "wav")


def test_a_lost_push_still_finishes_through_the_fallback(queued, wakes, settings, monkeypatch):
    job, speech = queued
    settings.SPEECH_WAKE_FALLBACK_SECONDS = 0.05
    monkeypatch.setattr(result_cache, "job_finished_signal", lambda **kwargs: None)  # the push is lost
    stream = Stream(speech)
    stream.start()
    _blocked_on(job)

    job_run(job_id=job.id, task_id="task-1")
    stream.join(30)
    assert not stream.is_alive()
    if stream.error:
        raise stream.error
    assert not redis_client().exists(redis_key("job", "done", str(job.id)))  # no push was made
    assert wakes and not any(wakes)  # every wait ran out; the state read after the last one found the clip
    assert_one_file(stream.body, "wav")


def test_a_push_before_the_wait_is_seen_and_wakes_every_waiter(transactional_db):
    job_id = "00000000-0000-0000-0000-000000000001"
    redis_client().delete(redis_key("job", "done", job_id))
    assert result_cache.job_finished_wait(job_id=job_id, seconds=0.01) is False  # nothing pushed yet
    result_cache.job_finished_signal(job_id=job_id)
    # The list is waited on without being emptied: a later waiter, and a second one, both see the push.
    assert result_cache.job_finished_wait(job_id=job_id, seconds=60) is True
    assert result_cache.job_finished_wait(job_id=job_id, seconds=60) is True
    assert 0 < redis_client().ttl(redis_key("job", "done", job_id)) <= result_cache.JOB_STATE_SECONDS


@pytest.mark.worker
def test_across_processes_the_workers_push_wakes_the_webs_stream(django_db_setup, django_db_blocker, transactional_db,
                                                                  make_user):
    """The live stack: gunicorn streams, a Celery worker process synthesises (0.3 s a sentence, so every sentence
    is still being made when the stream first reads its state) and pushes. The web's fallback is 60 s and the
    client gives up after 40 s: a stream that waited for anything but the push could not have answered."""
    with django_db_blocker.unblock():
        stack = ServiceStack(engine="tone", env={"SPEECH_WAKE_FALLBACK_SECONDS": "60", "TONE_DELAY_SECONDS": "0.3",
                                                 "THROTTLE_SPEECH_RATE": "100000/min"})
        try:
            stack.start()
            user = make_user(f"w{uuid.uuid4().hex[:8]}")
            assert StackClient(stack, user.token).upload_voice().status_code == 201
            tag = uuid.uuid4().hex[:6]
            response = requests.post(stack.base_url + "/v1/audio/speech", timeout=40,
                                     headers={"Authorization": f"Bearer {user.token}"},
                                     json={"model": "tts-1", "voice": "alloy", "input": f"One {tag}. Two {tag}.",
                                           "response_format": "wav"})
            assert response.status_code == 200, response.text[:300]
            assert_one_file(response.content, "wav")
            jobs = list(Job.objects.filter(owner_id=user.id).order_by("created_at"))
            assert [job.status for job in jobs] == ["succeeded", "succeeded"]
            # Made by the worker after the request queued them (no cache hit answered either sentence).
            assert all(not job.cache_hit and job.started_at >= job.created_at for job in jobs)
        finally:
            stack.shutdown()


def test_without_redis_a_wait_returns_for_the_caller_to_read_the_state_again(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there: every Redis call is refused
    job_id = "00000000-0000-0000-0000-000000000002"
    result_cache.job_finished_signal(job_id=job_id)  # logged, never raised: the job's finish stands
    assert result_cache.job_finished_wait(job_id=job_id, seconds=60) is False  # no block of 60 s on a dead Redis


def test_a_pis_encodings_are_made_after_the_waiting_stream_has_its_audio(queued, settings, monkeypatch, alice):
    """The worker stores the owner's Pi formats after the job's finish: here the encoder itself waits until the
    stream has its audio, which could never happen if the encodings came before the finish (the push)."""
    job, speech = queued
    settings.SPEECH_WAKE_FALLBACK_SECONDS = 60
    device, _ = device_create(owner_id=alice.id, name="Pi")
    device_audio_format_record(device_id=device.id, audio_format="opus")
    streamed = threading.Event()
    order: list[str] = []
    real_encode = clip_formats.audio_encode

    def encode_after_the_stream(**kwargs: Any) -> bytes:
        assert streamed.wait(30), "the encoding was made before the stream had its audio"
        order.append("encoded")
        return real_encode(**kwargs)

    monkeypatch.setattr(clip_formats, "audio_encode", encode_after_the_stream)  # a gate, the real encoder behind it

    class Watched(Stream):
        def run(self) -> None:
            super().run()
            order.append("streamed")
            streamed.set()

    stream = Watched(speech)
    stream.start()
    _blocked_on(job)
    job_run(job_id=job.id, task_id="task-1")  # returns once the worker's encodings are made
    stream.join(30)
    if stream.error:
        raise stream.error
    assert order == ["streamed", "encoded"]
    assert ClipEncoding.objects.filter(clip__owner_id=alice.id, audio_format="opus").count() == 1
