"""Bounded work per request (issue 24, item 1): a /v1/audio/speech request queues at most
SPEECH_MAX_SEGMENTS syntheses, each counted against the per-user jobs throttle; a user's unfinished
jobs are capped (USER_MAX_PENDING_JOBS, 429 `too_many_pending_jobs` with Retry-After) whichever way
they are asked for; an answer waits at most SPEECH_DEADLINE_SECONDS in all.

The flood runs for real: the official `openai` SDK and `requests` against live stacks (gunicorn with
gthread workers, a private Redis, the test database), one with a Celery worker running the tone engine
and one with no worker at all (a stopped GPU: every job stays queued). No GPU, nothing mocked."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import openai
import pytest
import redis
import requests
import soundfile
from django.conf import settings as django_settings

from tests.audio_samples import wav_bytes
from tests.stack import ServiceStack, speech_user_enrol
from tests.test_openai_speech import TONE_SECONDS, _gate, syntheses
from tests.test_web_pages import signed_in
from voice_tts.errors import ServiceError
from voice_tts.models import Job
from voice_tts.services.jobs import job_create
from voice_tts.services.speech import SPEECH_SAMPLE_RATE, speech_segments
from voice_tts.services.voices import voice_create
from workers.speech_text.sentences import sentences_split

JOBS_RATE = 40  # per hour (a window no test outlasts), per user: more than one flood (32), less than two
PENDING_CAP = 60
DEADLINE_SECONDS = 15  # room for a flood's 32 tone syntheses on a busy machine


def flood_text(tag: str, limit: int = 4096) -> str:
    """4096 characters of short sentences (hundreds of them), unique to the test."""
    sentences, n = [], 0
    while len(" ".join(sentences)) < limit:
        sentences.append(f"Pill {tag} {n}.")
        n += 1
    text = " ".join(sentences)[:limit]
    return text[:-1] + "x" if text.endswith(" ") else text


# --- The segments (pure code) ---------------------------------------------------------


def test_up_to_the_limit_every_sentence_is_its_own_segment():
    sentences = [f"Sentence {n}." for n in range(32)]
    assert speech_segments(sentences, max_segments=32, max_chars=500) == sentences


def test_a_flood_is_merged_into_the_limit_with_the_first_sentence_alone():
    text = flood_text("abc")
    sentences = sentences_split(text, max_chars=500)
    assert len(sentences) > 200
    segments = speech_segments(sentences, max_segments=32, max_chars=500)
    assert 30 <= len(segments) <= 32  # the smallest limit that fits may leave a segment or two to spare
    assert segments[0] == sentences[0]  # first audio after one short sentence
    assert all(len(segment) <= 500 for segment in segments)
    assert " ".join(segments) == " ".join(sentences)  # every sentence, in order, once
    # Even segments (the smallest limit that fits), not a few full ones and a short tail.
    assert max(map(len, segments[1:])) < 2 * min(map(len, segments[1:]))
    assert speech_segments(sentences, max_segments=32, max_chars=500) == segments  # same text, same clips


def test_languages_are_not_merged_unless_they_must_be():
    sentences = ["Hello there."] + [f"English {n}." for n in range(5)] + [f"한국어 {n}입니다." for n in range(5)]
    segments = speech_segments(sentences, max_segments=3, max_chars=500)
    assert segments == ["Hello there.", " ".join(sentences[1:6]), " ".join(sentences[6:])]
    # Alternating languages cannot keep apart in 3 segments: merged all the same.
    mixed = ["Hi."] + [f"One {n}. 하나 {n}." for n in range(6)]
    mixed = [piece for pair in mixed for piece in sentences_split(pair, max_chars=500)]
    segments = speech_segments(mixed, max_segments=3, max_chars=500)
    assert len(segments) == 3 and " ".join(segments) == " ".join(mixed)


def test_a_text_that_cannot_fit_is_none():
    sentences = [f"Sentence number {n}." for n in range(10)]  # 19-20 characters each
    assert speech_segments(sentences, max_segments=3, max_chars=25) is None


LONG_FIRST = "할머니, 아침 식사 후에 혈압약 한 알 드세요."


def test_a_long_first_sentence_is_cut_at_its_first_clause():
    sentences = [LONG_FIRST, "저녁에도, 잊지 말고 드세요.", "Good night."]
    segments = speech_segments(sentences, max_segments=32, max_chars=500)
    # First audio waits for "할머니," only; the later sentences keep their commas (only the first is cut).
    assert segments == ["할머니,", "아침 식사 후에 혈압약 한 알 드세요.", "저녁에도, 잊지 말고 드세요.", "Good night."]
    assert " ".join(segments) == " ".join(sentences)
    assert speech_segments(sentences, max_segments=32, max_chars=500) == segments  # same text, same clips
    # Not cut: a short sentence, a comma with no space after it, a clause too short before the mark.
    for whole in ("Yes, now please.", "Take 1,000 units of vitamin D daily.", "Hi, take the blue pill now."):
        assert speech_segments([whole, "Then rest."], max_segments=32, max_chars=500) == [whole, "Then rest."]
    assert speech_segments(["Grandma; take the blue pill now."], max_segments=32, max_chars=500) == [
        "Grandma;", "take the blue pill now."]


def test_the_cut_is_dropped_when_it_would_not_fit_the_bound():
    first = "Grandma, take your pill."  # 24 characters: "Grandma," + 15
    second = "Then drink water now!!"
    assert speech_segments([first], max_segments=2, max_chars=30) == ["Grandma,", "take your pill."]
    # Cut, the text is three pieces and the last two (38 characters) cannot merge within 30: kept whole, it fits.
    assert speech_segments([first, second], max_segments=2, max_chars=30) == [first, second]


# --- The pending cap in the service (real DB and Redis, no worker) ------------------------


def test_pending_cap_counts_interactive_jobs_only_and_estimates_retry_after(alice, bob, settings):

    settings.USER_MAX_PENDING_JOBS = 2
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    voice_create(owner_id=bob.id, data=wav_bytes(4.0))
    # Alice's syntheses took 3 s each lately: the estimate for one more job is 3 s.
    Job.objects.bulk_create(Job(owner=alice, voice=voice, text=f"done {n}", language="en",
                                status=Job.Status.SUCCEEDED, processing_time_ms=3000) for n in range(3))
    job_create(owner_id=alice.id, text="first", language="en", use_cache=False)
    job_create(owner_id=alice.id, text="second", language="en", use_cache=False)
    with pytest.raises(ServiceError) as refused:
        job_create(owner_id=alice.id, text="third", language="en", use_cache=False)
    assert (refused.value.code, refused.value.details) == ("too_many_pending_jobs", {"retry_after": 3})
    assert not Job.objects.filter(owner=alice, text="third").exists()  # nothing half-written
    # Nightly pre-generation (the batch queue) is neither refused nor counted.
    job_create(owner_id=alice.id, text="reminder", language="en", queue=django_settings.SYNTHESIS_BATCH_QUEUE)
    assert Job.objects.filter(owner=alice, status=Job.Status.QUEUED).count() == 3
    # Bob's own jobs are his own count.
    job_create(owner_id=bob.id, text="first", language="en", use_cache=False)


# --- The flood against a live stack with a worker -------------------------------------------


@pytest.fixture(scope="module")
def stack(django_db_setup: Any, django_db_blocker: Any) -> Iterator[ServiceStack]:
    with django_db_blocker.unblock():
        stack = ServiceStack(engine="tone", env={
            "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 8",
            "THROTTLE_SPEECH_RATE": "100000/min",
            "THROTTLE_JOBS_RATE": f"{JOBS_RATE}/hour",
            "USER_MAX_PENDING_JOBS": str(PENDING_CAP),
            "SPEECH_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
        })
        try:
            yield stack.start()
        finally:
            stack.shutdown()


@pytest.fixture(scope="module")
def idle_stack(django_db_setup: Any, django_db_blocker: Any) -> Iterator[ServiceStack]:
    """No worker: every job stays queued, as when the GPU worker is down."""
    with django_db_blocker.unblock():
        stack = ServiceStack(engine="tone", env={
            "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 8",
            "THROTTLE_SPEECH_RATE": "100000/min",
            "THROTTLE_JOBS_RATE": "100000/min",
            "USER_MAX_PENDING_JOBS": str(PENDING_CAP),
        })
        try:
            stack.redis.start()
            stack.start_web()
            yield stack
        finally:
            stack.shutdown()


def _enrol(stack: ServiceStack, make_user: Any) -> Any:
    user = speech_user_enrol(stack, make_user, "b")
    # The uploads counted in the stack's Redis are not the jobs' counter; start each user's window empty.
    client = redis.Redis.from_url(stack.redis.url)
    keys = list(client.scan_iter(match=f"{stack.env['CAREPILL_REDIS_PREFIX']}throttle:jobs:*"))
    if keys:
        client.delete(*keys)
    return user


@pytest.fixture
def enrolled(stack: ServiceStack, transactional_db: Any, make_user: Any) -> Any:
    return _enrol(stack, make_user)


def _pcm_seconds(data: bytes) -> float:
    return len(np.frombuffer(data, "<i2")) / SPEECH_SAMPLE_RATE


def test_a_flood_queues_at_most_32_syntheses_the_first_one_short(enrolled):
    text = flood_text(uuid.uuid4().hex[:6])
    sentences = sentences_split(text, max_chars=500)
    assert len(text) == 4096 and len(sentences) > 200  # before: one job per sentence
    answer = enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm")
    jobs = list(Job.objects.filter(owner_id=enrolled.id).order_by("created_at"))
    assert 30 <= len(jobs) <= 32
    assert jobs[0].text == sentences[0] and len(jobs[0].text) < 20
    assert " ".join(job.text for job in jobs) == " ".join(sentences)
    assert all(job.status == Job.Status.SUCCEEDED for job in jobs)
    # One tone per segment: the answer is the segments' audio, not 200 sentences'.
    assert abs(_pcm_seconds(answer.content) - len(jobs) * TONE_SECONDS) < 0.08


def test_a_long_first_sentence_goes_first_as_its_own_clause_and_repeats_are_hits(stack, enrolled):
    text = f"{LONG_FIRST} 저녁에도 잊지 마세요."
    answer = enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm")
    jobs = list(Job.objects.filter(owner_id=enrolled.id).order_by("created_at"))
    assert [job.text for job in jobs] == ["할머니,", "아침 식사 후에 혈압약 한 알 드세요.", "저녁에도 잊지 마세요."]
    assert all(job.status == Job.Status.SUCCEEDED and not job.cache_hit for job in jobs)
    # The clause's job was claimed by the worker before either of the others.
    assert min(jobs, key=lambda job: job.started_at).text == "할머니,"
    assert jobs[0].started_at < jobs[1].started_at < jobs[2].started_at
    assert abs(_pcm_seconds(answer.content) - 3 * TONE_SECONDS) < 0.08
    # The same text again: the same three pieces, every one a cache hit, no synthesis.
    made = syntheses(stack)
    again = enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm")
    assert again.content == answer.content
    assert syntheses(stack) == made
    assert not Job.objects.filter(owner_id=enrolled.id, cache_hit=False).exclude(id__in=[j.id for j in jobs]).exists()


def test_each_queued_synthesis_counts_against_the_jobs_throttle(stack, enrolled, make_user):
    tag = uuid.uuid4().hex[:6]
    flood = flood_text(tag)
    enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=flood, response_format="pcm")
    queued = Job.objects.filter(owner_id=enrolled.id).count()
    assert 30 <= queued <= 32  # units of the 40

    left = JOBS_RATE - queued
    over = " ".join(f"More {tag} {n}." for n in range(left + 1))  # one more than is left: refused whole
    with pytest.raises(openai.RateLimitError) as refused:
        enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=over, response_format="pcm")
    error = refused.value.body
    assert error["code"] == "rate_limit_exceeded" and f"{left + 1} syntheses" in error["message"]
    assert 0 < int(refused.value.response.headers["retry-after"]) <= 3600
    assert Job.objects.filter(owner_id=enrolled.id).count() == queued  # nothing half-queued

    # The same flood again is all cache hits: no synthesis, no unit.
    again = enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=flood, response_format="pcm")
    assert abs(_pcm_seconds(again.content) - queued * TONE_SECONDS) < 0.08
    assert Job.objects.filter(owner_id=enrolled.id).count() == queued
    # The refused request gave its units back: what is left fits exactly.
    fits = " ".join(f"More {tag} {n}." for n in range(left))
    enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=fits, response_format="pcm")
    assert Job.objects.filter(owner_id=enrolled.id).count() == JOBS_RATE

    # The same budget as POST /api/tts/jobs/: the 41st synthesis is refused there too.
    limited = enrolled.client.post("/api/tts/jobs/", json={"text": f"One more {tag}.", "language": "en"})
    assert limited.status_code == 429 and limited.json()["code"] == "throttled"
    assert int(limited.headers["Retry-After"]) > 0
    # Another user has a budget of their own.
    other = _enrol(stack, make_user)
    assert other.client.post("/api/tts/jobs/", json={"text": f"Mine {tag}.", "language": "en"}).status_code == 202


def test_the_whole_answer_has_one_deadline(stack, enrolled):
    """A FLAC answer waits for the whole text before its status line: past SPEECH_DEADLINE_SECONDS it is a 504 in
    OpenAI's envelope. The sentence held back is still unfinished when the answer comes: the deadline, not the
    work, ended the request."""
    last = f"Held back {uuid.uuid4().hex[:6]}."
    lock = _gate(stack, owner_id=enrolled.id, voice_id=enrolled.voice_id, sentence=last, language="en")
    try:
        response = requests.post(stack.base_url + "/v1/audio/speech", timeout=120,
                                 headers={"Authorization": f"Bearer {enrolled.token}"},
                                 json={"model": "tts-1", "voice": "alloy", "input": f"Made first. {last}",
                                       "response_format": "flac"})
        held = Job.objects.get(owner_id=enrolled.id, text=last)
        assert held.status in (Job.Status.QUEUED, Job.Status.RUNNING)
        assert Job.objects.get(owner_id=enrolled.id, text="Made first.").status == Job.Status.SUCCEEDED
        assert response.status_code == 504, response.content
        assert response.json() == {"error": {
            "message": response.json()["error"]["message"], "type": "server_error", "param": None,
            "code": "speech_timeout"}}
        assert "SPEECH_DEADLINE_SECONDS" in response.json()["error"]["message"]

        # The SDK (which retries a 504 by default) sees an InternalServerError with the same body.
        with pytest.raises(openai.InternalServerError) as timed_out:
            enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=f"Made first. {last}",
                                             response_format="flac")
        assert timed_out.value.status_code == 504 and timed_out.value.body["code"] == "speech_timeout"

        # A stream that has started ends at the same deadline: an sse stream with an error event in place of
        # `speech.audio.done` (the first sentence, a cache hit now, went out first).
        streamed = requests.post(stack.base_url + "/v1/audio/speech", stream=True, timeout=120,
                                 headers={"Authorization": f"Bearer {enrolled.token}"},
                                 json={"model": "tts-1", "voice": "alloy", "input": f"Made first. {last}",
                                       "response_format": "pcm", "stream_format": "sse"})
        assert streamed.status_code == 200
        events = [json.loads(line.removeprefix(b"data: ")) for line in streamed.iter_lines() if line]
        assert [event["type"] for event in events] == ["speech.audio.delta", "error"]
        assert events[1]["error"]["code"] == "speech_timeout"
        assert Job.objects.get(id=held.id).status in (Job.Status.QUEUED, Job.Status.RUNNING)
    finally:
        lock.release()
    # Released, the held sentence is made: the same request is answered whole.
    done = enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=f"Made first. {last}",
                                            response_format="flac")
    samples, rate = soundfile.read(io.BytesIO(done.content))
    assert rate == SPEECH_SAMPLE_RATE and abs(len(samples) / rate - 2 * TONE_SECONDS) < 0.08


# --- The pending cap against a live stack with no worker ----------------------------------------


@pytest.fixture
def idle_users(idle_stack: ServiceStack, transactional_db: Any, make_user: Any) -> tuple[Any, Any]:
    return _enrol(idle_stack, make_user), _enrol(idle_stack, make_user)


def _fill(user: Any, count: int, *, queue: str = "") -> None:
    Job.objects.bulk_create(Job(owner_id=user.id, voice_id=user.voice_id, text=f"waiting {queue} {n}",
                                language="en", queue=queue) for n in range(count))


def test_pending_cap_is_429_for_one_user_only(idle_users):
    alice, bob = idle_users
    _fill(alice, 100, queue=django_settings.SYNTHESIS_BATCH_QUEUE)  # the night's reminders: not counted
    _fill(alice, PENDING_CAP - 1)
    before = Job.objects.filter(owner_id=alice.id).count()

    # /v1: two more would be over the cap: refused whole, in OpenAI's envelope, with Retry-After.
    with pytest.raises(openai.RateLimitError) as refused:
        alice.sdk.audio.speech.create(model="tts-1", voice="alloy", input="One. Two.", response_format="pcm")
    assert refused.value.body["code"] == "too_many_pending_jobs" and refused.value.body["type"] == "requests"
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert Job.objects.filter(owner_id=alice.id).count() == before

    # The job API: one more fits, the next is refused with the same code.
    assert alice.client.post("/api/tts/jobs/", json={"text": "fits", "language": "en"}).status_code == 202
    over = alice.client.post("/api/tts/jobs/", json={"text": "over", "language": "en"})
    assert over.status_code == 429 and over.json()["code"] == "too_many_pending_jobs"
    assert int(over.headers["Retry-After"]) >= 1 and over.json()["message"]
    legacy = alice.client.post("/api/tts/generate/?wait=0", json={"text": "legacy over", "language": "en"})
    assert legacy.status_code == 429 and legacy.json()["code"] == "too_many_pending_jobs"
    assert Job.objects.filter(owner_id=alice.id).count() == before + 1

    # Bob is not Alice.
    assert bob.client.post("/api/tts/jobs/", json={"text": "bob's", "language": "en"}).status_code == 202


def test_requests_at_once_never_pass_the_cap(idle_users):
    alice, _ = idle_users
    _fill(alice, PENDING_CAP - 5)
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(
            lambda n: alice.client.post("/api/tts/jobs/", json={"text": f"at once {n}", "language": "en"}).status_code,
            range(12)))
    assert sorted(statuses) == [202] * 5 + [429] * 7
    assert Job.objects.filter(owner_id=alice.id).count() == PENDING_CAP


def test_the_pages_preview_is_capped_too(alice, bob, settings):
    """The caregiver's pages are no way around the cap (Django's test client, session login, no worker)."""

    settings.USER_MAX_PENDING_JOBS = 1
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    voice_create(owner_id=bob.id, data=wav_bytes(4.0))
    Job.objects.create(owner=alice, voice=voice, text="still waiting", language="ko")
    refused = signed_in(alice).post("/voice/preview/")
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_pending_jobs"
    assert int(refused["Retry-After"]) >= 1 and refused.json()["message"]
    assert Job.objects.filter(owner=alice).count() == 1
    assert signed_in(bob).post("/voice/preview/").status_code == 202
