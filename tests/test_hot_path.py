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


# --- the lean front (voice_tts/apis/hot_path.py) answers exactly as the DRF views ----------------

_VOLATILE = {"id", "created_at", "started_at", "finished_at", "audio_url"}


def _post(api: Any, body: Any, settings: Any, *, lean: bool) -> tuple[int, Any, dict[str, str]]:
    settings.HOT_PATH = lean
    response = api.post("/api/tts/jobs/", body, format="json")
    data = response.json()
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in _VOLATILE}
    headers = {name: response.get(name, "") for name in ("Content-Type", "Allow")}
    headers["Location"] = "yes" if response.get("Location", "").startswith("/api/tts/jobs/") else response.get(
        "Location", "")
    return response.status_code, data, headers


@pytest.mark.parametrize("body", [
    {"text": TEXT, "language": "en"},                         # cache hit: 200
    {"text": f"  {TEXT}\n", "language": "en", "params": {}},  # the same hit after normalisation
    {"text": "A phrase nobody asked for yet", "language": "en"},  # miss: 202 + Location
    {"text": TEXT, "language": "en", "use_cache": False},     # miss on purpose
    {"text": TEXT, "language": "en", "params": {"speed": 1, "seed": 7}},  # int speed -> 1.0, same key
    {"text": TEXT, "language": "en", "ignored": "extra keys are ignored, as by the serializer"},
    {"text": "   "},                                          # service error: text_empty
    {"text": "\u202eevil"},                                   # service error: text_invalid_characters
    {"text": TEXT, "language": "xx"},                         # serializer: invalid_input
    {"text": TEXT, "params": {"speed": "fast"}},
    {"text": TEXT, "params": {"speed": True}},
    {"text": TEXT, "params": {"volume": 2}},
    {"text": TEXT, "params": {"seed": 1.5}},
    {"text": TEXT, "use_cache": "yes"},
    {"text": 5},
    {"language": "en"},
    [TEXT],
    {"text": TEXT, "webhook_url": "ftp://example.org/hook"},
])
def test_lean_and_drf_answer_the_same(alice_api, alice, cached_clip, settings, body):
    alice_api.get("/api/tts/voices/")  # token cached: the lean front may answer
    drf = _post(alice_api, body, settings, lean=False)
    lean = _post(alice_api, body, settings, lean=True)
    assert lean == drf
    assert drf[2]["Allow"] == "POST, OPTIONS" and drf[2]["Content-Type"] == "application/json"


def test_lean_poll_answers_as_drf(alice_api, bob_api, cached_clip, settings):
    job_id = alice_api.post("/api/tts/jobs/", {"text": TEXT, "language": "en"}, format="json").json()["id"]
    answers = {}
    for lean in (False, True):
        settings.HOT_PATH = lean
        mine, other = alice_api.get(f"/api/tts/jobs/{job_id}/"), bob_api.get(f"/api/tts/jobs/{job_id}/")
        answers[lean] = [(r.status_code, r.content, r["Content-Type"], r["Allow"]) for r in (mine, other)]
    assert answers[True] == answers[False]
    assert answers[True][0][0] == 200 and answers[True][1][0] == 404


@pytest.fixture
def drf_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every request that reached a DRF view of the two hot routes."""
    from voice_tts.apis.jobs import JobCreateApi, JobDetailApi

    calls: list[str] = []
    for view in (JobCreateApi, JobDetailApi):
        original = view.dispatch

        def dispatch(self: Any, request: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(request.method)
            return _original(self, request, *args, **kwargs)

        monkeypatch.setattr(view, "dispatch", dispatch)
    return calls


def test_well_formed_requests_skip_drf(alice_api, cached_clip, drf_calls):
    alice_api.get("/api/tts/voices/")
    job_id = alice_api.post("/api/tts/jobs/", {"text": TEXT, "language": "en"}, format="json").json()["id"]
    assert alice_api.get(f"/api/tts/jobs/{job_id}/").status_code == 200
    assert drf_calls == []
    # Anything unusual goes to DRF, which owns those answers.
    assert alice_api.post("/api/tts/jobs/", {"text": TEXT, "language": "xx"}, format="json").status_code == 400
    form = alice_api.post("/api/tts/jobs/", f"text={TEXT}", content_type="application/x-www-form-urlencoded")
    assert form.status_code == 202  # a form body (language defaults to ko: not the cached clip)
    assert drf_calls == ["POST", "POST"]


def test_cold_token_cache_goes_through_drf_then_lean(alice, cached_clip, drf_calls):
    from tests.conftest import api_client

    status.redis_client().delete(token_cache_key(alice.token))
    api = api_client(alice)
    for _ in range(2):
        assert api.post("/api/tts/jobs/", {"text": TEXT, "language": "en"}, format="json").status_code == 200
    assert drf_calls == ["POST"]  # the first one filled the token cache


def test_throttle_counts_each_request_once_on_either_path(alice_api, alice, cached_clip, settings):
    from django.conf import settings as django_settings

    settings.THROTTLE_RATES = {"jobs": "3/min", "uploads": "2/hour"}
    key = f"{django_settings.REDIS_KEY_PREFIX}throttle:jobs:{alice.pk}"
    status.redis_client().delete(key)
    alice_api.get("/api/tts/voices/")
    ok = {"text": TEXT, "language": "en"}
    assert alice_api.post("/api/tts/jobs/", ok, format="json").status_code == 200  # lean
    # Counted by the lean front, then answered by DRF (invalid input): still one count.
    assert alice_api.post("/api/tts/jobs/", {"text": TEXT, "language": "xx"}, format="json").status_code == 400
    assert int(status.redis_client().get(key)) == 2
    assert alice_api.post("/api/tts/jobs/", ok, format="json").status_code == 200
    limited = alice_api.post("/api/tts/jobs/", ok, format="json")
    assert limited.status_code == 429 and limited.json()["code"] == "throttled"
    assert 0 < int(limited["Retry-After"]) <= 60
    assert int(status.redis_client().get(key)) == 4
    status.redis_client().delete(key)


def test_hot_path_off_sends_everything_to_drf(alice_api, cached_clip, settings, drf_calls):
    settings.HOT_PATH = False
    alice_api.get("/api/tts/voices/")
    assert alice_api.post("/api/tts/jobs/", {"text": TEXT, "language": "en"}, format="json").status_code == 200
    assert drf_calls == ["POST"]
