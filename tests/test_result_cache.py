"""The result cache (voice_tts/result_cache.py): cache hits and polls from Redis, with no SQL,
and never a clip, voice or job state that the database no longer holds.

In this process, through the whole Django/DRF stack (APIClient), on the real Redis and the
test database (run on SQLite and on PostgreSQL by `make test`), with two users. The clips are
stored by the same service a worker uses (`clip_store`), with real audio.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.audio_samples import voice_like, wav_bytes
from tests.conftest import api_client
from voice_tts import result_cache
from voice_tts.models import Clip, Job, Voice
from voice_tts.redis_client import redis_client
from voice_tts.services.clips import clip_cache_key, clip_store, clip_uses_flush, clips_evict_over_quota
from voice_tts.services.voices import voice_create, voice_delete
from voice_tts.worker.status import engine_version_key, engine_version_publish

TEXT = "약 드실 시간입니다"
VERSION = "result-cache-v1"


@pytest.fixture(autouse=True)
def _jobs_to_a_queue_nobody_serves(request: Any, settings: Any) -> None:
    # Jobs these tests queue must not be run by a worker of this run (one may be serving the
    # synthesis queue for other tests): they would add clips under the tests' feet. The test
    # marked `worker` wants exactly that.
    if request.node.get_closest_marker("worker") is None:
        settings.SYNTHESIS_QUEUE = "result-cache-tests-no-worker"


@pytest.fixture
def engine_version(transactional_db: Any) -> Iterator[str]:
    # What a worker publishes when it loads the engine the web is configured for. Put back what
    # was there after the test: the run's real worker published its own version there.
    key, client = engine_version_key(settings.TTS_ENGINE), redis_client()  # the real Redis, kept for teardown
    before = client.get(key)
    engine_version_publish(engine=settings.TTS_ENGINE, model_version=VERSION)
    yield VERSION
    if before is None:
        client.delete(key)
    else:
        client.set(key, before)


def _clip(voice: Voice, text: str = TEXT, *, model_version: str = VERSION) -> Clip:
    key = clip_cache_key(voice_id=voice.id, text=text, language="ko", engine=settings.TTS_ENGINE,
                         model_version=model_version, params={})
    return clip_store(voice=voice, cache_key=key, text=text, language="ko", params={}, engine=settings.TTS_ENGINE,
                      model_version=model_version, samples=voice_like(1.0, rate=16000), sample_rate=16000)


def _ask(user: Any, text: str = TEXT, **extra: Any) -> Any:
    return api_client(user).post("/api/tts/jobs/", {"text": text, "language": "ko", **extra}, format="json")


@pytest.fixture
def alice_voice(alice: Any, engine_version: str) -> Voice:
    return voice_create(owner_id=alice.id, data=wav_bytes(4.0))


@pytest.fixture
def bob_voice(bob: Any, engine_version: str) -> Voice:
    return voice_create(owner_id=bob.id, data=wav_bytes(5.0))


def test_a_warm_cache_hit_runs_no_sql_and_writes_no_row(alice, alice_voice):
    clip = _clip(alice_voice)
    assert _ask(alice).status_code == 200  # fills the token and active-voice entries
    with CaptureQueriesContext(connection) as queries:
        response = _ask(alice)
    assert response.status_code == 200, response.content
    assert [q["sql"] for q in queries.captured_queries] == []
    body = response.json()
    assert (body["id"], body["clip_id"], body["cache_key"]) == (None, clip.id, clip.cache_key)
    assert body["audio_url"].endswith(f"/api/tts/cache/{clip.cache_key}/audio/")
    assert Job.objects.count() == 0
    assert api_client(alice).get(body["audio_url"]).status_code == 200


def test_a_cold_entry_falls_back_to_the_database_once(alice, alice_voice):
    clip = _clip(alice_voice)
    result_cache.owner_entries_invalidate(owner_id=alice.id)  # as after any change of alice's data
    with CaptureQueriesContext(connection) as cold:
        assert _ask(alice).json()["clip_id"] == clip.id
    with CaptureQueriesContext(connection) as warm:
        assert _ask(alice).json()["clip_id"] == clip.id
    assert len(cold.captured_queries) >= 2 and len(warm.captured_queries) == 0


def test_a_deleted_clip_is_never_served(alice, alice_voice):
    clip = _clip(alice_voice)
    assert _ask(alice).status_code == 200
    clip.delete()
    response = _ask(alice)
    assert response.status_code == 202 and response.json()["status"] == "queued"


def test_an_evicted_clip_is_never_served(alice, alice_voice, settings):
    settings.CLIP_QUOTA_PER_USER = 1
    old, new = _clip(alice_voice, "아침 약"), _clip(alice_voice, "저녁 약")
    for text in ("아침 약", "저녁 약"):
        assert _ask(alice, text).status_code == 200
    assert clips_evict_over_quota(owner_id=alice.id, keep_clip_id=new.id) == 1
    assert not Clip.objects.filter(id=old.id).exists()
    assert _ask(alice, "아침 약").status_code == 202
    assert _ask(alice, "저녁 약").json()["clip_id"] == new.id


def test_a_clip_of_a_deleted_voice_is_never_served(alice, alice_voice):
    first = _clip(alice_voice)
    assert _ask(alice).json()["clip_id"] == first.id
    second_voice = voice_create(owner_id=alice.id, data=wav_bytes(5.0))
    assert _ask(alice).status_code == 202  # the active voice changed: another key
    second = _clip(second_voice)
    assert _ask(alice).json()["clip_id"] == second.id
    voice_delete(voice=second_voice)
    response = _ask(alice)
    # The older voice is not active any more either: nothing to speak with.
    assert (response.status_code, response.json()["code"]) == (400, "no_active_voice")
    assert not Clip.objects.filter(id=second.id).exists()


def test_a_voice_deactivated_in_the_admin_is_not_used(alice, alice_voice):
    assert _ask(alice).status_code == 202
    alice_voice.is_active = False
    alice_voice.save()  # what the admin's change form does
    assert _ask(alice).json()["code"] == "no_active_voice"


def test_deleting_a_user_moves_their_generation_on(alice, alice_voice):
    owner_id = alice.id
    before = result_cache.owner_generation(owner_id=owner_id)
    alice.delete()  # cascades to the voice: its receiver and the user's both move it on
    assert result_cache.owner_generation(owner_id=owner_id) > before


def test_another_users_clip_is_never_a_hit(alice, bob, alice_voice, bob_voice):
    alices = _clip(alice_voice)
    assert _ask(alice).json()["clip_id"] == alices.id
    response = _ask(bob)
    assert response.status_code == 202  # Bob's own job, for Bob's own voice
    assert Job.objects.get(id=response.json()["id"]).voice_id == bob_voice.id
    assert api_client(bob).get(f"/api/tts/cache/{alices.cache_key}/audio/").status_code == 404


def test_a_new_model_version_stops_old_clips_at_once(alice, alice_voice):
    clip = _clip(alice_voice)
    assert _ask(alice).json()["clip_id"] == clip.id
    engine_version_publish(engine=settings.TTS_ENGINE, model_version="result-cache-v2")
    response = _ask(alice)
    assert response.status_code == 202
    assert response.json()["cache_key"] is None  # decided when synthesised, under the new version


def test_an_entry_filled_from_rows_read_before_a_deletion_is_not_believed(alice, alice_voice):
    # A reader reads the generation, then the clip's row; the clip is deleted; then the reader
    # writes its entry. The entry carries the generation from before the deletion.
    clip = _clip(alice_voice)
    generation = result_cache.owner_generation(owner_id=alice.id)
    cached = result_cache.CachedClip(id=clip.id, cache_key=clip.cache_key, duration_seconds=clip.duration_seconds)
    Clip.objects.filter(id=clip.id).delete()
    result_cache.clip_remember(owner_id=alice.id, clip=cached, generation=generation)
    assert result_cache.clip_hit_cached(owner_id=alice.id, cache_key=clip.cache_key) is None
    assert _ask(alice).status_code == 202


def test_a_webhook_request_on_a_hit_records_a_finished_job(alice, alice_voice, receiver):
    clip = _clip(alice_voice)
    response = _ask(alice, webhook_url=receiver.url)
    assert response.status_code == 200
    job = Job.objects.get(id=response.json()["id"])
    assert (job.status, job.cache_hit, job.clip_id, job.webhook_status) == ("succeeded", True, clip.id, "pending")


@pytest.mark.worker
def test_polling_reads_redis_with_the_owner_checked(worker, alice, bob, bob_voice):
    # A real worker (espeak) runs the job; it publishes its model version when it loads.
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    # The worker's main process (it takes every message off the broker) is stopped while the job
    # is asked for and first read, so that read is of a queued job: espeak may otherwise finish first.
    os.kill(worker.proc.pid, signal.SIGSTOP)
    try:
        created = _ask(alice, "점심 약 드세요")
        assert created.status_code == 202
        path = f"/api/tts/jobs/{created.json()['id']}/"
        with CaptureQueriesContext(connection) as first:
            assert api_client(alice).get(path).json()["status"] == "queued"
    finally:
        os.kill(worker.proc.pid, signal.SIGCONT)
    # Bob never sees it, cached or not: the same 404 as a random id.
    assert api_client(bob).get(path).status_code == 404

    deadline = time.monotonic() + 60
    while (body := api_client(alice).get(path).json())["status"] != "succeeded":
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    # The worker wrote each state as it changed: reads of the finished job run no SQL either.
    with CaptureQueriesContext(connection) as done:
        assert api_client(alice).get(path).json() == body
    assert body["audio_url"] and len(first.captured_queries) == 0 and len(done.captured_queries) == 0
    assert api_client(bob).get(path).status_code == 404

    # The job's clip is evicted: the job shows no audio any more.
    Clip.objects.filter(id=Job.objects.get(id=body["id"]).clip_id).delete()
    after = api_client(alice).get(path).json()
    assert after["status"] == "succeeded" and after["audio_url"] is None


def test_clip_uses_are_counted_in_redis_and_flushed(alice, alice_voice):
    clip = _clip(alice_voice)
    for _ in range(3):
        assert _ask(alice).status_code == 200
    clip.refresh_from_db()
    assert clip.access_count == 0  # not written by the hits
    assert clip_uses_flush() == 1
    clip.refresh_from_db()
    assert clip.access_count == 3 and clip.last_accessed_at is not None
    assert clip_uses_flush() == 0  # nothing new


def test_a_flush_that_fails_before_its_commit_loses_no_count(alice, alice_voice):
    clip = _clip(alice_voice)
    _ask(alice), _ask(alice)
    with pytest.raises(RuntimeError), result_cache.clip_uses_flushing() as taken:
        assert taken == {clip.id: (2, taken[clip.id][1])}
        raise RuntimeError("the flusher died before its commit")
    _ask(alice)  # counted in the live counters meanwhile
    assert clip_uses_flush() == 1  # the two left over
    assert clip_uses_flush() == 1  # then the third
    clip.refresh_from_db()
    assert clip.access_count == 3


def test_one_flush_at_a_time(alice, alice_voice):
    _clip(alice_voice)
    _ask(alice)
    with result_cache.clip_uses_flushing() as taken:
        assert taken
        assert clip_uses_flush() == 0  # the other flush holds the lock


@pytest.fixture
def redis_down(settings: Any) -> None:
    # A port nothing listens on: every Redis call fails at once.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"


def test_with_redis_down_the_api_answers_from_the_database(alice, bob, alice_voice, redis_down):
    clip = _clip(alice_voice)
    response = _ask(alice)
    assert response.status_code == 200, response.content
    assert response.json()["clip_id"] == clip.id
    clip.refresh_from_db()
    assert clip.access_count == 1  # counted straight in the row
    queued = _ask(alice, "새 문장")
    assert queued.status_code == 202
    path = f"/api/tts/jobs/{queued.json()['id']}/"
    # Read from the row (the message went to the broker, which a worker of this run may be serving).
    with CaptureQueriesContext(connection) as read:
        assert api_client(alice).get(path).json()["id"] == queued.json()["id"]
    assert any("voice_tts_job" in q["sql"] for q in read.captured_queries)
    assert api_client(bob).get(path).status_code == 404
