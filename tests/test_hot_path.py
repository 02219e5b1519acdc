"""The request hot paths made lean for bench/api_latency.py: the cached token -> user lookup
(and its invalidation), query counts of a cache-hit POST /api/tts/jobs/ and of polling, and
the `.values()` job JSON being the same as the model-based one. No timings here."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from tests.audio_samples import wav_bytes
from voice_tts.apis.authentication import token_cache_key, token_cache_user
from voice_tts.models import Clip, Job
from voice_tts.presenters import JOB_VALUES_FIELDS, job_representation, job_representation_values
from voice_tts.services.clips import clip_cache_key
from voice_tts.services.voices import voice_create
from workers import status

TEXT = "Time for your evening pills"


def _token_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "authtoken_token" in q["sql"]]


def test_second_request_authenticates_from_the_cache(alice_api, alice):
    assert alice_api.get("/api/tts/voices/").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert alice_api.get("/api/tts/voices/").status_code == 200
    assert _token_queries(queries) == []


def _cached(token: str) -> bytes | None:
    return status.redis_client().get(token_cache_key(token))


def test_cached_entry_holds_no_password_hash(alice_api, alice):
    alice_api.get("/api/tts/voices/")
    entry = _cached(alice.token)
    assert b"password" not in entry and b"pbkdf2" not in entry
    cached = token_cache_user(entry)
    assert cached.pk == alice.pk and cached.username == "alice" and cached.is_active
    assert "password" in cached.get_deferred_fields()


def test_deleted_token_stops_working_at_once(alice_api, alice):
    assert alice_api.get("/api/tts/voices/").status_code == 200
    Token.objects.filter(key=alice.token).delete()
    assert _cached(alice.token) is None
    response = alice_api.get("/api/tts/voices/")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


def test_deactivated_user_stops_working_at_once(alice_api, alice):
    assert alice_api.get("/api/tts/voices/").status_code == 200
    user = User.objects.get(pk=alice.pk)
    user.is_active = False
    user.save()
    assert alice_api.get("/api/tts/voices/").status_code == 401


def test_deleted_user_stops_working_at_once(alice_api, alice):
    assert alice_api.get("/api/tts/voices/").status_code == 200
    User.objects.filter(pk=alice.pk).delete()
    assert alice_api.get("/api/tts/voices/").status_code == 401


def test_wrong_token_is_refused_and_not_cached(client, db):
    response = client.get("/api/tts/voices/", HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert response.status_code == 401
    assert _cached("0" * 40) is None


@pytest.fixture
def cached_clip(alice: Any, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Clip:
    """A stored clip for TEXT and a worker-published model version (patched at the Redis
    boundary, so no other test sees a made-up version)."""
    monkeypatch.setattr(status, "engine_version_current", lambda *, engine: "hot-path-test-1")
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    key = clip_cache_key(voice_id=voice.id, text=TEXT, language="en", engine=settings.TTS_ENGINE,
                         model_version="hot-path-test-1", params={})
    return Clip.objects.create(owner_id=alice.id, voice=voice, cache_key=key, text=TEXT, language="en",
                               params={}, engine=settings.TTS_ENGINE, model_version="hot-path-test-1",
                               audio=f"clips/{alice.id}/{key}.wav", duration_seconds=1.25, sample_rate=16000)


def test_cache_hit_post_query_count(alice_api, cached_clip, django_assert_max_num_queries):
    alice_api.get("/api/tts/voices/")  # the token is cached from here on
    # voice, clip, then INSERT job + UPDATE clip in one transaction (SQLite adds BEGIN/COMMIT
    # as queries; PostgreSQL adds SAVEPOINT-free BEGIN/COMMIT outside the count).
    with django_assert_max_num_queries(6):
        response = alice_api.post("/api/tts/jobs/", {"text": TEXT, "language": "en"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["cache_hit"] is True and response.json()["duration_seconds"] == 1.25


def test_polling_is_one_query(alice_api, cached_clip, django_assert_max_num_queries):
    job_id = alice_api.post("/api/tts/jobs/", {"text": TEXT, "language": "en"}, format="json").json()["id"]
    with django_assert_max_num_queries(1):
        body = alice_api.get(f"/api/tts/jobs/{job_id}/").json()
    assert body["status"] == "succeeded" and body["duration_seconds"] == 1.25
    assert body["audio_url"] == f"http://testserver/api/tts/jobs/{job_id}/audio/"


def test_polling_someone_elses_job_is_404(alice_api, bob_api, cached_clip):
    job_id = alice_api.post("/api/tts/jobs/", {"text": TEXT, "language": "en"}, format="json").json()["id"]
    response = bob_api.get(f"/api/tts/jobs/{job_id}/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.parametrize("state", ["succeeded", "failed", "queued"])
def test_values_json_equals_model_json(alice, cached_clip, state):
    fields: dict[str, Any] = {"status": state}
    if state == "succeeded":
        fields |= {"clip": cached_clip, "cache_hit": True, "cache_key": cached_clip.cache_key,
                   "processing_time_ms": 12}
    if state == "failed":
        fields |= {"error_code": "engine_failed", "error_message": "boom"}
    job = Job.objects.create(owner_id=alice.id, voice=cached_clip.voice, text=TEXT, language="en",
                             params={"speed": 1.5}, **fields)
    job = Job.objects.select_related("clip").get(id=job.id)
    row = Job.objects.filter(id=job.id).values(*JOB_VALUES_FIELDS).get()
    base = "http://example.org/"
    assert job_representation_values(row, base_url=base) == job_representation(job, base_url=base)
