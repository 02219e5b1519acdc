"""GETs that only read: the home page (/voice/), the reminders' poll (/voice/reminders/states/) and the
Pi's bundle (GET /api/tts/phrases/bundle/) write no row, and their SQL does not grow with the number
of phrases or of past jobs (2 phrases vs 20 phrases with 50 old jobs: the same count).

Clips are pinned and checksummed when stored (services/clips.py clip_store), not when read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.audio_samples import wav_bytes
from voice_tts.models import Clip, Job, ReminderPhrase, Voice
from voice_tts.redis_client import redis_client
from voice_tts.services.clips import clip_cache_key, clip_store
from voice_tts.services.phrases import phrases_failed
from voice_tts.services.tokens import device_create
from voice_tts.services.voices import voice_create
from voice_tts.worker.status import engine_version_key, engine_version_publish

VERSION = "read-only-gets-v1"
WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def engine_version(db: Any) -> Iterator[str]:
    # What a worker publishes when it loads the engine; put back what was there afterwards.
    key, client = engine_version_key(settings.TTS_ENGINE), redis_client()
    before = client.get(key)
    engine_version_publish(engine=settings.TTS_ENGINE, model_version=VERSION)
    yield VERSION
    if before is None:
        client.delete(key)
    else:
        client.set(key, before)


def _clip(voice: Voice, text: str, *, model_version: str = VERSION) -> Clip:
    key = clip_cache_key(voice_id=voice.id, text=text, language="ko", engine=settings.TTS_ENGINE,
                         model_version=model_version, params={})
    return clip_store(voice=voice, cache_key=key, text=text, language="ko", params={}, engine=settings.TTS_ENGINE,
                      model_version=model_version, samples=np.zeros(2205, np.int16) + 100, sample_rate=22050)


def household(user: Any, *, phrases: int, old_jobs: int) -> None:
    """`phrases` active reminders: every third ready (a clip of the current model), every third stale
    (a clip of older weights), the rest pending, some of those failed; `old_jobs` past jobs for them."""
    voice = voice_create(owner_id=user.id, data=wav_bytes(4.0))
    texts = [f"{i}번 약 드실 시간입니다" for i in range(phrases)]
    for i, text in enumerate(texts):
        ReminderPhrase.objects.create(owner=user, text=text, language="ko", times=[f"{8 + i % 12:02d}:00"])
        if i % 3 == 0:
            _clip(voice, text)
        elif i % 3 == 1:
            _clip(voice, text, model_version="older-weights")
    for j in range(old_jobs):
        Job.objects.create(owner=user, voice=voice, text=texts[j % phrases], language="ko",
                           status=Job.Status.FAILED if j % 2 else Job.Status.SUCCEEDED, error_code="x",
                           error_message=f"broke {j}")


# A device's first request in a minute records that it was seen (services/tokens.py device_seen): the
# Pi's presence for the caregiver's alerts, on purpose, and the one write allowed here.
DEVICE_SEEN = 'UPDATE "voice_tts_accesstoken" SET "last_seen_at"'


def _writes(sql: list[str]) -> list[str]:
    return [q for q in sql if q.lstrip().upper().startswith(WRITES) and not q.startswith(DEVICE_SEEN)]


def _sql_of(get: Any, path: str) -> list[str]:
    """The second GET's SQL (the first warms the token and model-version entries in Redis, as between a
    Pi's polls); neither may write."""
    with CaptureQueriesContext(connection) as first:
        assert get(path).status_code == 200
    assert _writes([query["sql"] for query in first.captured_queries]) == [], path
    with CaptureQueriesContext(connection) as queries:
        response = get(path)
    assert response.status_code == 200, response.content[:300]
    return [query["sql"] for query in queries.captured_queries]


def _sql_per_get(user: Any) -> dict[str, list[str]]:
    page = Client()
    page.force_login(user)
    pi = APIClient()
    _, key = device_create(owner_id=user.id, name="거실 Pi")
    pi.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return {
        "home": _sql_of(page.get, "/voice/"),
        "poll": _sql_of(page.get, "/voice/reminders/states/"),
        "bundle": _sql_of(pi.get, "/api/tts/phrases/bundle/"),
    }


def test_gets_write_nothing_and_their_sql_does_not_grow_with_phrases_or_jobs(engine_version, make_user):
    small, large = make_user("small"), make_user("large")
    household(small, phrases=2, old_jobs=0)
    household(large, phrases=20, old_jobs=50)
    Clip.objects.update(pinned=False)  # as if stored before a phrase named them: the GETs must not pin
    small_sql, large_sql = _sql_per_get(small), _sql_per_get(large)

    for name in ("home", "poll", "bundle"):
        assert _writes(small_sql[name] + large_sql[name]) == [], name
        assert len(large_sql[name]) == len(small_sql[name]), (name, small_sql[name], large_sql[name])
    assert not Clip.objects.filter(pinned=True).exists()
    # The counts recorded in bench/RESULTS.md (2026-12-07); a change here should update them.
    assert {name: len(sql) for name, sql in large_sql.items()} == {"home": 13, "poll": 8, "bundle": 5}


def test_clips_are_pinned_and_checksummed_when_stored_for_an_active_phrase(engine_version, alice):
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    ReminderPhrase.objects.create(owner=alice, text="약 드세요", language="ko")
    ReminderPhrase.objects.create(owner=alice, text="쉬는 중", language="ko", is_active=False)
    reminder, paused, other = _clip(voice, "약 드세요"), _clip(voice, "쉬는 중"), _clip(voice, "그냥 문장")
    assert (reminder.pinned, paused.pinned, other.pinned) == (True, False, False)
    assert all(len(clip.sha256) == 64 for clip in (reminder, paused, other))
    assert Clip.objects.get(id=reminder.id).pinned


def test_failed_reads_only_the_latest_job_per_text_and_language(engine_version, alice):
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    for text in ("아침 약", "저녁 약", "자기 전 약"):
        ReminderPhrase.objects.create(owner=alice, text=text, language="ko")
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)

    def job(text: str, status: str, minutes: int, **fields: Any) -> None:
        fields.setdefault("language", "ko")
        made = Job.objects.create(owner=alice, voice=voice, text=text, status=status, **fields)
        Job.objects.filter(id=made.id).update(created_at=start + dt.timedelta(minutes=minutes))

    job("아침 약", Job.Status.FAILED, 1, error_message="first try broke")
    job("아침 약", Job.Status.SUCCEEDED, 2)  # a later success clears it
    job("저녁 약", Job.Status.SUCCEEDED, 1)
    job("저녁 약", Job.Status.FAILED, 2, error_message="engine broke")  # the latest failed
    job("저녁 약", Job.Status.FAILED, 3, error_message="with params", params={"speed": 1.2})  # not a reminder's
    job("저녁 약", Job.Status.FAILED, 4, language="en", error_message="other language")  # not this phrase's
    job("자기 전 약", Job.Status.FAILED, 1, error_message="old")
    job("자기 전 약", Job.Status.QUEUED, 2)  # a newer try is on its way
    assert phrases_failed(owner_id=alice.id) == {("저녁 약", "ko"): "engine broke"}
