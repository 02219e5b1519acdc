"""The official `openai` SDK against a live stack: gunicorn with gthread workers (the serving
choice, medicine_project/gunicorn_conf.py), a real Celery worker with the tone engine, a private
Redis, the test database. One stack for the module; users, voices and jobs per test.

The tone engine makes 16 kHz clips here, so no stored encoding is at the 24 kHz every answer is in:
every answer is encoded here (tests/test_openai_speech_stored.py has the 24 kHz engine)."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import redis
import requests
import soundfile

from tests.audio_samples import assert_one_file
from tests.stack import ServiceStack, StackClient, speech_user_enrol
from voice_tts.models import ClipEncoding, Job
from voice_tts.services.clips import clip_cache_key
from voice_tts.services.jobs import job_fail
from voice_tts.services.speech import SPEECH_SAMPLE_RATE

pytestmark = pytest.mark.worker

TONE_SECONDS = 0.25  # each tone clip (workers/engines/tone.py)


@pytest.fixture(scope="module")
def stack(django_db_setup: Any, django_db_blocker: Any) -> Iterator[ServiceStack]:
    with django_db_blocker.unblock():
        stack = ServiceStack(engine="tone", env={
            # What gunicorn_conf.py chooses; ServiceStack's own flags (2 workers) stay.
            "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 8",
            "THROTTLE_SPEECH_RATE": "100000/min",
        })
        try:
            yield stack.start()
        finally:
            stack.shutdown()


@pytest.fixture
def enrolled(stack: ServiceStack, transactional_db: Any, make_user: Any) -> Any:
    """A user (new for each test) with one enrolled voice, and an SDK client with their key."""
    return speech_user_enrol(stack, make_user, "u")


def sdk(stack: ServiceStack, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=stack.base_url + "/v1", max_retries=0, timeout=60)


def syntheses(stack: ServiceStack) -> int:
    return sum(worker.get("syntheses", 0) for worker in stack.workers())


def decoded_seconds(data: bytes, response_format: str) -> float:
    if response_format == "pcm":
        assert len(data) % 2 == 0
        return len(np.frombuffer(data, "<i2")) / SPEECH_SAMPLE_RATE
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    assert rate == SPEECH_SAMPLE_RATE
    assert np.abs(samples).max() > 0.1  # the tones, not silence
    return len(samples) / rate


TEXT = "First sentence here. 두 번째 문장입니다! Third one?"


@pytest.mark.parametrize("response_format", ["mp3", "opus", "flac", "wav", "pcm"])
def test_each_response_format_streams_one_file_by_default(enrolled, response_format):
    """As on OpenAI, no `stream_format` means streamed raw audio; a client reading the whole body gets one file."""
    expected = 3 * TONE_SECONDS
    # The SDK's plain call reads the whole body.
    whole = enrolled.sdk.audio.speech.create(model="tts-1-hd", voice=enrolled.voice_id, input=TEXT,
                                             response_format=response_format)
    assert "content-length" not in whole.response.headers
    assert whole.response.headers["transfer-encoding"] == "chunked"
    assert_one_file(whole.content, response_format)
    assert abs(decoded_seconds(whole.content, response_format) - expected) < 0.08
    # The SDK's streaming example (every sentence a cache hit now): no stream_format either.
    with enrolled.sdk.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=TEXT, response_format=response_format,
    ) as response:
        assert "content-length" not in response.headers
        streamed = b"".join(response.iter_bytes())
    assert_one_file(streamed, response_format)
    assert abs(decoded_seconds(streamed, response_format) - expected) < 0.08
    # `stream_format: audio` said out loud is the same answer.
    said = enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=TEXT,
                                            response_format=response_format, stream_format="audio")
    assert "content-length" not in said.response.headers
    assert_one_file(said.content, response_format)
    assert abs(decoded_seconds(said.content, response_format) - expected) < 0.08
    if response_format in ("mp3", "pcm"):  # no random part in these encodings: the same bytes every time
        assert whole.content == streamed == said.content
    # 16 kHz clips: their stored encodings would not be at 24 kHz, so none was made for /v1.
    assert not ClipEncoding.objects.filter(clip__owner_id=enrolled.id).exists()


def _gate(stack: ServiceStack, *, owner_id: int, voice_id: str, sentence: str, language: str) -> Any:
    """Hold the worker back from making `sentence`: it takes the clip's Redis lock (one synthesis per
    owner and clip, services/jobs.py) before it synthesises, so it waits while the test holds it."""
    key = clip_cache_key(voice_id=voice_id, text=sentence, language=language, engine="tone",
                         model_version="tone-1", params={})
    client = redis.Redis.from_url(stack.redis.url)
    lock = client.lock(f"{stack.env['CAREPILL_REDIS_PREFIX']}lock:clip:{owner_id}:{key}", timeout=120)
    assert lock.acquire(blocking=False)
    return lock


@pytest.mark.parametrize("response_format", ["pcm", "mp3"])
def test_streaming_sends_the_first_sentence_before_the_last_is_made(stack, enrolled, response_format):
    """The SDK's streaming example, which sends no `stream_format`: the default streams."""
    last = f"The last sentence {uuid.uuid4().hex[:6]} waits."
    text = f"One comes first. Two comes next. {last}"
    lock = _gate(stack, owner_id=enrolled.id, voice_id=enrolled.voice_id, sentence=last, language="en")
    try:
        with enrolled.sdk.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="coral", input=text, response_format=response_format,
            instructions="Speak warmly.",
        ) as response:
            assert response.headers["content-type"].startswith("audio/")
            chunks = response.iter_bytes()
            first = next(chunks)
            assert first
            # Audio has arrived, and the last sentence's job is still waiting on the gate.
            held = Job.objects.get(owner_id=enrolled.id, text=last)
            assert held.status in (Job.Status.QUEUED, Job.Status.RUNNING)
            lock.release()
            rest = b"".join(chunks)
    finally:
        if lock.owned():
            lock.release()
    held.refresh_from_db()
    assert held.status == Job.Status.SUCCEEDED
    assert abs(decoded_seconds(first + rest, response_format) - 3 * TONE_SECONDS) < 0.08


def _sse(response: requests.Response) -> list[dict[str, Any]]:
    events = []
    for line in response.iter_lines():
        if line:
            assert line.startswith(b"data: "), line
            events.append(json.loads(line[len(b"data: "):]))
    return events


def test_sse_events_parse(stack, enrolled):
    with enrolled.sdk.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="mp3", stream_format="sse",
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    events = [json.loads(line.removeprefix("data: ")) for line in lines]
    assert [event["type"] for event in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert len(events) >= 2
    done = events[-1]
    assert done["type"] == "speech.audio.done"
    assert done["usage"] == {"input_tokens": len(TEXT), "output_tokens": 0, "total_tokens": len(TEXT)}
    audio = b"".join(base64.b64decode(event["audio"]) for event in events[:-1])
    assert abs(decoded_seconds(audio, "mp3") - 3 * TONE_SECONDS) < 0.08


def _running(job: Job, timeout: float = 60.0) -> Job:
    deadline = time.monotonic() + timeout
    while job.status != Job.Status.RUNNING:
        assert time.monotonic() < deadline, f"job {job.id} is still {job.status}"
        time.sleep(0.05)
        job.refresh_from_db()
    return job


def test_a_sentence_that_fails_mid_stream_ends_sse_with_an_error_event(stack, enrolled, settings):
    last = f"Never made {uuid.uuid4().hex[:6]}."
    lock = _gate(stack, owner_id=enrolled.id, voice_id=enrolled.voice_id, sentence=last, language="en")
    try:
        response = requests.post(stack.base_url + "/v1/audio/speech", stream=True, timeout=60,
                                 headers={"Authorization": f"Bearer {enrolled.token}"},
                                 json={"model": "tts-1", "voice": enrolled.voice_id, "input": f"Made first. {last}",
                                       "response_format": "pcm", "stream_format": "sse"})
        assert response.status_code == 200
        lines = (line for line in response.iter_lines() if line)
        assert json.loads(next(lines).removeprefix(b"data: "))["type"] == "speech.audio.delta"
        # The held job fails the way an engine failure fails it (job_fail, through the stack's Redis).
        settings.CELERY_BROKER_URL = stack.redis.url
        settings.REDIS_KEY_PREFIX = stack.env["CAREPILL_REDIS_PREFIX"]
        held = _running(Job.objects.get(owner_id=enrolled.id, text=last))
        job_fail(job=held, code="engine_failed", message="The engine gave up (failed by the test).")
        events = [json.loads(line.removeprefix(b"data: ")) for line in lines]
    finally:
        lock.release()
    assert [event["type"] for event in events] == ["error"]
    error = events[0]["error"]
    assert error["type"] == "server_error" and error["code"] == "engine_failed" and "gave up" in error["message"]

    # Before any audio, the same failure is a plain 500 in the envelope (the SDK's InternalServerError).
    alone = f"Alone {uuid.uuid4().hex[:6]}."
    lock = _gate(stack, owner_id=enrolled.id, voice_id=enrolled.voice_id, sentence=alone, language="en")
    try:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(enrolled.sdk.audio.speech.create, model="tts-1", voice="alloy", input=alone,
                                 response_format="pcm")
            held = _running(_job_created(owner_id=enrolled.id, text=alone))
            job_fail(job=held, code="engine_failed", message="The engine gave up (failed by the test).")
            with pytest.raises(openai.InternalServerError) as failed:
                answer.result(timeout=60)
    finally:
        lock.release()
    assert failed.value.body["code"] == "engine_failed" and failed.value.body["message"]


def test_a_sentence_that_fails_mid_stream_cuts_an_audio_stream_off(stack, enrolled, settings):
    """The default answer (no `stream_format`) once its first sentence has gone out."""
    settings.CELERY_BROKER_URL = stack.redis.url
    settings.REDIS_KEY_PREFIX = stack.env["CAREPILL_REDIS_PREFIX"]
    last = f"Cut off {uuid.uuid4().hex[:6]}."
    lock = _gate(stack, owner_id=enrolled.id, voice_id=enrolled.voice_id, sentence=last, language="en")
    try:
        response = requests.post(stack.base_url + "/v1/audio/speech", stream=True, timeout=60,
                                 headers={"Authorization": f"Bearer {enrolled.token}"},
                                 json={"model": "tts-1", "voice": "alloy", "input": f"Played first. {last}",
                                       "response_format": "pcm"})
        assert response.status_code == 200 and response.headers["transfer-encoding"] == "chunked"
        chunks = response.iter_content(chunk_size=None)
        assert next(chunks)
        held = _running(Job.objects.get(owner_id=enrolled.id, text=last))
        job_fail(job=held, code="engine_failed", message="The engine gave up (failed by the test).")
        # No last chunk: the client sees a broken body, not a short file that looks whole.
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for _ in chunks:
                pass
    finally:
        lock.release()

    # The SDK's plain call reads the whole body: the cut-off body is an APIConnectionError, not a short file.
    later = f"Cut off later {uuid.uuid4().hex[:6]}."
    lock = _gate(stack, owner_id=enrolled.id, voice_id=enrolled.voice_id, sentence=later, language="en")
    try:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(enrolled.sdk.audio.speech.create, model="tts-1", voice="alloy",
                                 input=f"Played first. {later}", response_format="mp3")
            held = _running(_job_created(owner_id=enrolled.id, text=later))
            job_fail(job=held, code="engine_failed", message="The engine gave up (failed by the test).")
            with pytest.raises(openai.APIConnectionError):
                answer.result(timeout=60)
    finally:
        lock.release()

    # The SDK's streaming example: the audio so far, then httpx's RemoteProtocolError from iter_bytes().
    streamed = f"Cut off streamed {uuid.uuid4().hex[:6]}."
    lock = _gate(stack, owner_id=enrolled.id, voice_id=enrolled.voice_id, sentence=streamed, language="en")
    try:
        with enrolled.sdk.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=f"Played first. {streamed}", response_format="wav",
        ) as response:
            chunks = response.iter_bytes()
            assert next(chunks).startswith(b"RIFF")
            held = _running(Job.objects.get(owner_id=enrolled.id, text=streamed))
            job_fail(job=held, code="engine_failed", message="The engine gave up (failed by the test).")
            with pytest.raises(httpx.RemoteProtocolError):
                for _ in chunks:
                    pass
    finally:
        lock.release()


def _job_created(*, owner_id: int, text: str, timeout: float = 60.0) -> Job:
    deadline = time.monotonic() + timeout
    while (job := Job.objects.filter(owner_id=owner_id, text=text).first()) is None:
        assert time.monotonic() < deadline, f"no job for {text!r}"
        time.sleep(0.05)
    return job


def test_errors_reach_the_sdk_with_a_message(stack, enrolled, make_user):
    with pytest.raises(openai.AuthenticationError) as bad_key:
        sdk(stack, "not-a-key").audio.speech.create(model="tts-1", voice="alloy", input="hello")
    assert bad_key.value.status_code == 401 and bad_key.value.body["message"]

    with pytest.raises(openai.NotFoundError) as unknown:
        enrolled.sdk.audio.speech.create(model="tts-1", voice=str(uuid.uuid4()), input="hello")
    assert unknown.value.body["code"] == "voice_not_found" and unknown.value.body["message"]

    with pytest.raises(openai.BadRequestError) as too_long:
        enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input="a" * 4097)
    assert too_long.value.body["param"] == "input" and too_long.value.body["message"]
    enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input="a" * 4096, response_format="pcm")

    # Another user's voice is a 404 too, and their voices are not listed.
    other = make_user(f"o{uuid.uuid4().hex[:8]}")
    others_voice = StackClient(stack, other.token).upload_voice().json()["id"]
    with pytest.raises(openai.NotFoundError) as foreign:
        enrolled.sdk.audio.speech.create(model="tts-1", voice=others_voice, input="hello")
    assert foreign.value.body["message"]
    listed = requests.get(stack.base_url + "/v1/audio/voices", headers={"Authorization": f"Bearer {enrolled.token}"},
                          timeout=30).json()
    assert [voice["id"] for voice in listed["voices"]] == [enrolled.voice_id]


def test_models_list_through_the_sdk(stack, enrolled):
    assert [model.id for model in enrolled.sdk.models.list()] == ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "tone"]
    assert enrolled.sdk.models.retrieve("tone").id == "tone"


def test_repeated_sentences_are_cache_hits_across_requests(stack, enrolled):
    tag = uuid.uuid4().hex[:6]
    before = syntheses(stack)
    first = enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", response_format="wav",
                                             input=f"Alpha {tag}. Beta {tag}.")
    assert syntheses(stack) - before == 2
    second = enrolled.sdk.audio.speech.create(model="tts-1", voice="nova", response_format="wav",
                                              input=f"Beta {tag}. Gamma {tag}. Alpha {tag}.")
    assert syntheses(stack) - before == 3  # only Gamma was made
    one, _ = soundfile.read(io.BytesIO(first.content))
    two, _ = soundfile.read(io.BytesIO(second.content))
    half = len(one) // 2
    # Beta (the second half of the first answer) is the first third of the second answer, sample for sample.
    np.testing.assert_array_equal(two[:half], one[half:])
    # The same voice through its id and through a built-in name: the same clips.
    third = enrolled.sdk.audio.speech.create(model="tone", voice=enrolled.voice_id, response_format="wav",
                                             input=f"Alpha {tag}.")
    assert syntheses(stack) - before == 3
    np.testing.assert_array_equal(soundfile.read(io.BytesIO(third.content))[0], one[:half])
