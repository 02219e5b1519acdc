"""Isolation matrix: every /api/ endpoint x {owner, other user, anonymous, bad token}.

Nothing of Alice's may be read, changed or even proven to exist by Bob: her objects answer
Bob exactly what a random id answers (404 `not_found`, same body), never 403; anonymous
callers and bad tokens get 401; list endpoints show only the caller's own items; Bob's
writes only ever touch Bob's data. Requests go through the whole Django/DRF stack
(middleware, URL routing, token auth) with on-commit callbacks executed, so a delete that
wrongly succeeded would really remove files, and the disk is checked.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from rest_framework.test import APIClient

from tests.audio_samples import voice_like, wav_bytes
from tests.conftest import api_client
from voice_tts.models import AdaptationState, Clip, Dose, Job, PhrasePlay, ReminderPhrase, Voice
from voice_tts.services.clips import clip_cache_key, clip_store


@dataclass
class World:
    alice: Any
    bob: Any
    alice_voice: Voice
    bob_voice: Voice
    alice_job: Job  # succeeded, with a clip
    alice_queued_job: Job  # no audio yet: the owner gets 409, anyone else 404
    alice_clip: Clip
    alice_phrase: ReminderPhrase

    def file(self, name: str) -> Path:
        return Path(settings.MEDIA_ROOT) / name


def _voice(user: Any) -> Voice:
    response = api_client(user).post("/api/tts/voices/", {"voice_file": _upload()}, format="multipart")
    assert response.status_code == 201, response.content
    return Voice.objects.get(id=response.json()["id"])


def _upload() -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("sample.wav", wav_bytes(4.0), content_type="audio/wav")


def _preview(voice: Voice) -> None:
    """A finished style search's before/after preview beside the reference, named on the row."""
    names = {side: default_storage.save(f"{voice.audio.name}.preview-{side}.wav", ContentFile(wav_bytes(1.0)))
             for side in ("before", "after")}
    Voice.objects.filter(id=voice.id).update(adaptation_state=AdaptationState.DONE,
                                             adaptation_preview_before=names["before"],
                                             adaptation_preview_after=names["after"])


def _clip_and_jobs(user: Any, voice: Voice) -> tuple[Clip, Job, Job]:
    text = "약 드실 시간입니다"
    key = clip_cache_key(voice_id=voice.id, text=text, language="ko", engine="tone", model_version="t1", params={})
    clip = clip_store(voice=voice, cache_key=key, text=text, language="ko", params={}, engine="tone",
                      model_version="t1", samples=voice_like(1.0, rate=16000), sample_rate=16000)
    done = Job.objects.create(owner=user, voice=voice, text=text, language="ko", status=Job.Status.SUCCEEDED,
                              clip=clip, cache_key=key, processing_time_ms=1)
    queued = Job.objects.create(owner=user, voice=voice, text="저녁 약", language="ko")
    return clip, done, queued


@pytest.fixture
def world(alice: Any, bob: Any, django_capture_on_commit_callbacks: Any) -> World:
    with django_capture_on_commit_callbacks(execute=True):
        alice_voice, bob_voice = _voice(alice), _voice(bob)
    clip, done, queued = _clip_and_jobs(alice, alice_voice)
    _preview(alice_voice)
    phrase = ReminderPhrase.objects.create(owner=alice, text=clip.text, language="ko", times=["08:00"], days=[1, 3])
    PhrasePlay.objects.create(owner=alice, phrase=phrase, key="pi-a:1:2027-01-04:08:00", outcome="played",
                              source="cache", played_at=timezone.now())
    return World(alice, bob, alice_voice, bob_voice, done, queued, clip, phrase)


def _random_phrase_path() -> str:
    return f"/api/tts/phrases/{random.randrange(10**9, 2**31)}/"


# Every endpoint that names one object: (id, method, path of Alice's object, path of a random one,
# what Alice herself gets).
OBJECT_ENDPOINTS: list[tuple[str, str, Callable[[World], str], Callable[[], str], int]] = [
    ("voice-detail", "get", lambda w: f"/api/tts/voices/{w.alice_voice.id}/",
     lambda: f"/api/tts/voices/{uuid.uuid4()}/", 200),
    ("voice-delete", "delete", lambda w: f"/api/tts/voices/{w.alice_voice.id}/",
     lambda: f"/api/tts/voices/{uuid.uuid4()}/", 204),
    ("voice-adaptation-preview", "get", lambda w: f"/api/tts/voices/{w.alice_voice.id}/adaptation/preview/after/",
     lambda: f"/api/tts/voices/{uuid.uuid4()}/adaptation/preview/after/", 200),
    ("job-detail", "get", lambda w: f"/api/tts/jobs/{w.alice_job.id}/",
     lambda: f"/api/tts/jobs/{uuid.uuid4()}/", 200),
    ("job-audio", "get", lambda w: f"/api/tts/jobs/{w.alice_job.id}/audio/",
     lambda: f"/api/tts/jobs/{uuid.uuid4()}/audio/", 200),
    ("job-audio-not-ready", "get", lambda w: f"/api/tts/jobs/{w.alice_queued_job.id}/audio/",
     lambda: f"/api/tts/jobs/{uuid.uuid4()}/audio/", 409),
    ("cache-detail", "get", lambda w: f"/api/tts/cache/{w.alice_clip.cache_key}/",
     lambda: f"/api/tts/cache/{uuid.uuid4().hex * 2}/", 200),
    ("cache-audio", "get", lambda w: f"/api/tts/cache/{w.alice_clip.cache_key}/audio/",
     lambda: f"/api/tts/cache/{uuid.uuid4().hex * 2}/audio/", 200),
    ("phrase-detail", "get", lambda w: f"/api/tts/phrases/{w.alice_phrase.id}/", _random_phrase_path, 200),
    ("phrase-update", "patch", lambda w: f"/api/tts/phrases/{w.alice_phrase.id}/", _random_phrase_path, 200),
    ("phrase-delete", "delete", lambda w: f"/api/tts/phrases/{w.alice_phrase.id}/", _random_phrase_path, 204),
    ("phrase-plays", "get", lambda w: f"/api/tts/phrases/{w.alice_phrase.id}/plays/",
     lambda: _random_phrase_path() + "plays/", 200),
    ("phrase-play-report", "post", lambda w: f"/api/tts/phrases/{w.alice_phrase.id}/plays/",
     lambda: _random_phrase_path() + "plays/", 201),
]

# Request bodies of the object endpoints that write (by row id); the others send none.
OBJECT_BODIES: dict[str, Callable[[], Any]] = {
    "phrase-update": lambda: {"text": "Bob was here", "times": ["03:00"], "days": [7], "is_active": False},
    # A fresh key each call: Alice's own report after Bob's refused one is new (201).
    "phrase-play-report": lambda: {"played_at": timezone.now().isoformat(), "outcome": "played", "source": "cache",
                                   "key": f"pi-{uuid.uuid4().hex}:1:2027-01-04:08:00"},
}

# Endpoints that act on the caller's own account: (id, method, path, request body, format).
ACCOUNT_ENDPOINTS: list[tuple[str, str, str, Callable[[], Any], str]] = [
    ("voices-list", "get", "/api/tts/voices/", dict, "json"),
    ("voices-create", "post", "/api/tts/voices/", lambda: {"voice_file": _upload()}, "multipart"),
    ("upload-voice", "post", "/api/tts/upload-voice/", lambda: {"voice_file": _upload()}, "multipart"),
    ("jobs-create", "post", "/api/tts/jobs/", lambda: {"text": "약 드세요"}, "json"),
    ("generate", "post", "/api/tts/generate/?wait=0", lambda: {"text": "약 드세요"}, "json"),
    ("webhook-secret", "get", "/api/tts/webhook-secret/", dict, "json"),
    ("webhook-secret-rotate", "post", "/api/tts/webhook-secret/rotate/", dict, "json"),
    ("phrases-list", "get", "/api/tts/phrases/", dict, "json"),
    ("phrases-create", "post", "/api/tts/phrases/", lambda: {"text": "약 드세요"}, "json"),
    ("phrase-bundle", "get", "/api/tts/phrases/bundle/", dict, "json"),
    ("doses-list", "get", "/api/tts/doses/", dict, "json"),
    ("device-heartbeat", "post", "/api/tts/devices/heartbeat/", lambda: {"timezone": "Asia/Seoul"}, "json"),
]

# Who calls: a client for the world, and whether it is authenticated.
ACTORS: dict[str, Callable[[World], APIClient]] = {
    "anonymous": lambda w: APIClient(),
    "bad-token": lambda w: _bad_token_client(),
}


def _bad_token_client() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {uuid.uuid4().hex}")
    return client


def _call(client: APIClient, method: str, path: str, body: Any = None, fmt: str = "json") -> Any:
    if method == "get" or method == "delete":
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format=fmt)


def _state(w: World) -> dict[str, Any]:
    """Everything of Alice's that a leak could change: rows and files."""
    return {
        "voices": sorted((str(v.id), v.is_active) for v in Voice.objects.filter(owner=w.alice)),
        "jobs": sorted((str(j.id), j.status) for j in Job.objects.filter(owner=w.alice)),
        "clips": sorted(c.cache_key for c in Clip.objects.filter(owner=w.alice)),
        "phrases": sorted((p.id, p.text, p.language, tuple(p.times), tuple(p.days), p.is_active)
                          for p in ReminderPhrase.objects.filter(owner=w.alice)),
        "plays": sorted(PhrasePlay.objects.filter(owner=w.alice).values_list("key", "phrase_id", "outcome")),
        "voice_file": w.file(w.alice_voice.audio.name).read_bytes(),
        "clip_file": w.file(w.alice_clip.audio.name).read_bytes(),
    }


@pytest.mark.parametrize(("name", "method", "path_of", "random_path", "owner_status"), OBJECT_ENDPOINTS,
                         ids=[row[0] for row in OBJECT_ENDPOINTS])
def test_other_user_gets_the_same_404_as_for_a_random_id(
    world: World, django_capture_on_commit_callbacks: Any, name: str, method: str,
    path_of: Callable[[World], str], random_path: Callable[[], str], owner_status: int,
) -> None:
    bob = api_client(world.bob)
    body = OBJECT_BODIES.get(name, dict)
    before = _state(world)
    with django_capture_on_commit_callbacks(execute=True):
        theirs = _call(bob, method, path_of(world), body())
        nothing = _call(bob, method, random_path(), body())
    assert theirs.status_code == 404, (name, theirs.content)
    # Byte-identical answers: Bob cannot tell "exists but Alice's" from "does not exist".
    assert (theirs.status_code, theirs.content) == (nothing.status_code, nothing.content)
    assert theirs.json() == {"code": "not_found", "message": theirs.json()["message"]}
    assert _state(world) == before
    # And the same request from Alice works, so the 404 above is about ownership.
    with django_capture_on_commit_callbacks(execute=True):
        mine = _call(api_client(world.alice), method, path_of(world), body())
    assert mine.status_code == owner_status, (name, mine.content)


@pytest.mark.parametrize("actor", list(ACTORS))
@pytest.mark.parametrize(("name", "method", "path_of", "random_path", "owner_status"), OBJECT_ENDPOINTS,
                         ids=[row[0] for row in OBJECT_ENDPOINTS])
def test_unauthenticated_object_access_is_401(
    world: World, django_capture_on_commit_callbacks: Any, actor: str, name: str, method: str,
    path_of: Callable[[World], str], random_path: Callable[[], str], owner_status: int,
) -> None:
    body = OBJECT_BODIES.get(name, dict)
    before = _state(world)
    with django_capture_on_commit_callbacks(execute=True):
        response = _call(ACTORS[actor](world), method, path_of(world), body())
        nothing = _call(ACTORS[actor](world), method, random_path(), body())
    assert response.status_code == 401, (name, response.content)
    assert response.json()["code"] in ("not_authenticated", "authentication_failed")
    assert (response.status_code, response.content) == (nothing.status_code, nothing.content)
    assert _state(world) == before


@pytest.mark.parametrize("actor", list(ACTORS))
@pytest.mark.parametrize(("name", "method", "path", "body", "fmt"), ACCOUNT_ENDPOINTS,
                         ids=[row[0] for row in ACCOUNT_ENDPOINTS])
def test_unauthenticated_account_endpoints_are_401_and_write_nothing(
    world: World, django_capture_on_commit_callbacks: Any, actor: str, name: str, method: str, path: str,
    body: Callable[[], Any], fmt: str,
) -> None:
    def counts() -> tuple[int, ...]:
        return Voice.objects.count(), Job.objects.count(), Clip.objects.count(), ReminderPhrase.objects.count()

    before = counts()
    with django_capture_on_commit_callbacks(execute=True):
        response = _call(ACTORS[actor](world), method, path, body(), fmt)
    assert response.status_code == 401, (name, response.content)
    assert response.json()["code"] in ("not_authenticated", "authentication_failed")
    assert counts() == before


def test_lists_show_only_my_own_voices(world: World) -> None:
    mine = {v["id"] for v in api_client(world.alice).get("/api/tts/voices/").json()["results"]}
    theirs = {v["id"] for v in api_client(world.bob).get("/api/tts/voices/").json()["results"]}
    assert mine == {str(world.alice_voice.id)}
    assert theirs == {str(world.bob_voice.id)}


def test_lists_show_only_my_own_phrases(world: World) -> None:
    # Bob's phrase has exactly Alice's text: refusing it (409) would reveal hers.
    created = api_client(world.bob).post("/api/tts/phrases/", {"text": world.alice_phrase.text}, format="json")
    assert created.status_code == 201, created.content
    bobs = created.json()["id"]
    for user, mine, voice in ((world.alice, world.alice_phrase.id, world.alice_voice),
                              (world.bob, bobs, world.bob_voice)):
        client = api_client(user)
        assert [p["id"] for p in client.get("/api/tts/phrases/").json()["results"]] == [mine]
        bundle = client.get("/api/tts/phrases/bundle/").json()
        assert [p["id"] for p in bundle["phrases"]] == [mine]
        assert bundle["voice_id"] == str(voice.id)
    # Bob has no clip of that text (Alice has one): his entry carries none.
    assert bundle["phrases"][0]["status"] == "pending" and bundle["phrases"][0]["audio_url"] is None


def test_bobs_phrase_writes_never_touch_alices_phrases(world: World, django_capture_on_commit_callbacks: Any) -> None:
    before = _state(world)
    bob = api_client(world.bob)
    with django_capture_on_commit_callbacks(execute=True):
        created = bob.post("/api/tts/phrases/", {"text": world.alice_phrase.text, "times": ["09:00"]}, format="json")
        assert created.status_code == 201, created.content
        url = f"/api/tts/phrases/{created.json()['id']}/"
        assert bob.patch(url, {"text": "Bob's own", "is_active": False}, format="json").status_code == 200
        assert bob.delete(url).status_code == 204
    assert _state(world) == before
    assert not ReminderPhrase.objects.filter(owner=world.bob).exists()


def test_bob_cannot_delete_alices_voice_and_her_files_stay(world: World,
                                                         django_capture_on_commit_callbacks: Any) -> None:
    voice_file = world.file(world.alice_voice.audio.name)
    clip_file = world.file(world.alice_clip.audio.name)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(world.bob).delete(f"/api/tts/voices/{world.alice_voice.id}/")
    assert response.status_code == 404
    assert voice_file.is_file() and clip_file.is_file()
    assert Voice.objects.filter(id=world.alice_voice.id).exists()
    # The control: Alice's own delete does remove both files (so the check above can fail).
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client(world.alice).delete(f"/api/tts/voices/{world.alice_voice.id}/").status_code == 204
    assert not voice_file.exists() and not clip_file.exists()


@pytest.mark.parametrize("path", ["/api/tts/voices/", "/api/tts/upload-voice/"])
def test_bobs_upload_never_touches_alices_active_voice(world: World, django_capture_on_commit_callbacks: Any,
                                                       path: str) -> None:
    before = _state(world)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(world.bob).post(path, {"voice_file": _upload()}, format="multipart")
    assert response.status_code == 201, response.content
    assert _state(world) == before
    new = Voice.objects.exclude(id=world.bob_voice.id).get(owner=world.bob)
    assert new.is_active and new.audio.name.startswith(f"voices/{world.bob.id}/")


@pytest.mark.parametrize("path", ["/api/tts/jobs/", "/api/tts/generate/?wait=0"])
def test_jobs_only_ever_use_the_callers_own_voice(world: World, make_user: Callable[[str], Any], path: str) -> None:
    # Carol has no voice: Alice's and Bob's are never borrowed.
    carol = api_client(make_user("carol"))
    refused = carol.post(path, {"text": "약 드실 시간입니다"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "no_active_voice"
    # Bob asking for exactly Alice's cached text gets a job on his voice, not her clip.
    response = api_client(world.bob).post(path, {"text": world.alice_job.text, "language": "ko"}, format="json")
    assert response.status_code == 202, response.content
    job_id = response.json().get("id") or response.json()["job_id"]
    job = Job.objects.get(id=job_id)
    assert (job.owner_id, job.voice_id, job.cache_hit) == (world.bob.id, world.bob_voice.id, False)
    assert job.clip_id is None


def test_webhook_secrets_are_per_user(world: World) -> None:
    alice = api_client(world.alice).get("/api/tts/webhook-secret/").json()["secret"]
    bob = api_client(world.bob).get("/api/tts/webhook-secret/").json()["secret"]
    assert alice.startswith("whsec_") and bob.startswith("whsec_")
    assert alice != bob
    assert api_client(world.alice).get("/api/tts/webhook-secret/").json()["secret"] == alice
    # Bob rotating his secret leaves Alice's alone.
    rotated = api_client(world.bob).post("/api/tts/webhook-secret/rotate/")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] not in (alice, bob)
    assert api_client(world.alice).get("/api/tts/webhook-secret/").json()["secret"] == alice


# What a device's token (the Pi) may do; every other row of the matrix is 403 `device_not_allowed`.
DEVICE_ALLOWED = {"job-detail", "job-audio", "job-audio-not-ready", "cache-detail", "cache-audio", "jobs-create",
                  "generate", "phrase-bundle", "phrase-play-report", "doses-list", "device-heartbeat"}


def _alice_device(world: World) -> APIClient:
    created = api_client(world.alice).post("/api/tts/devices/", {"name": "거실 Pi"}, format="json")
    assert created.status_code == 201
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {created.json()['token']}")
    return client


@pytest.mark.parametrize(("name", "method", "path_of", "random_path", "owner_status"), OBJECT_ENDPOINTS,
                         ids=[row[0] for row in OBJECT_ENDPOINTS])
def test_a_device_token_on_object_routes(
    world: World, django_capture_on_commit_callbacks: Any, name: str, method: str,
    path_of: Callable[[World], str], random_path: Callable[[], str], owner_status: int,
) -> None:
    device = _alice_device(world)
    before = _state(world)
    with django_capture_on_commit_callbacks(execute=True):
        response = _call(device, method, path_of(world), OBJECT_BODIES.get(name, dict)())
    if name in DEVICE_ALLOWED:
        assert response.status_code == owner_status, (name, response.content)
    else:
        assert (response.status_code, response.json()["code"]) == (403, "device_not_allowed"), name
        assert _state(world) == before


@pytest.mark.parametrize(("name", "method", "path", "body", "fmt"), ACCOUNT_ENDPOINTS,
                         ids=[row[0] for row in ACCOUNT_ENDPOINTS])
def test_a_device_token_on_account_routes(
    world: World, django_capture_on_commit_callbacks: Any, name: str, method: str, path: str,
    body: Callable[[], Any], fmt: str,
) -> None:
    device = _alice_device(world)
    before = _state(world)
    with django_capture_on_commit_callbacks(execute=True):
        response = _call(device, method, path, body(), fmt)
    if name in DEVICE_ALLOWED:
        assert response.status_code in (200, 202), (name, response.content)
    else:
        assert (response.status_code, response.json()["code"]) == (403, "device_not_allowed"), name
        assert _state(world) == before


def test_public_endpoints_reveal_no_user_data(world: World) -> None:
    health = APIClient().get("/api/tts/health/")
    assert health.status_code in (200, 503)
    text = health.content.decode()
    for secret in (str(world.alice_voice.id), world.alice_clip.cache_key, world.alice.username, world.alice.token):
        assert secret not in text
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert world.alice.token not in schema.content.decode()


def test_every_api_route_is_in_the_matrix() -> None:
    """A new endpoint under /api/ fails this test until it is added to the tables above."""
    from django.urls import get_resolver

    routes: set[str] = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, route)
            elif route.startswith("api/"):
                routes.add(route)

    walk(get_resolver().url_patterns, "")
    covered = {
        "api/tts/voices/", "api/tts/voices/<uuid:voice_id>/", "api/tts/upload-voice/", "api/tts/jobs/",
        "api/tts/voices/<uuid:voice_id>/adaptation/preview/<str:side>/",
        "api/tts/jobs/<uuid:job_id>/", "api/tts/jobs/<uuid:job_id>/audio/", "api/tts/generate/",
        "api/tts/cache/<str:cache_key>/", "api/tts/cache/<str:cache_key>/audio/", "api/tts/webhook-secret/",
        "api/tts/webhook-secret/rotate/", "api/tts/phrases/", "api/tts/phrases/bundle/",
        "api/tts/phrases/<int:phrase_id>/", "api/tts/phrases/<int:phrase_id>/plays/",
        # Public by design, checked for leaks above: login needs no token, health and the schema hold no user data.
        "api/auth/login/", "api/tts/health/", "api/schema/",
        # Revokes the caller's own token only: tests/test_tokens.py (anonymous 401, other tokens untouched).
        "api/auth/logout/",
        # Two users and devices: tests/test_devices_api.py (another user's device is a 404, lists are own).
        "api/tts/devices/", "api/tts/devices/<int:device_id>/",
        # In ACCOUNT_ENDPOINTS above; a heartbeat from a login's token is a 403 (tests/test_doses_api.py).
        "api/tts/doses/", "api/tts/devices/heartbeat/",
        # Names Alice's phrase in its body: test_bob_cannot_confirm_alices_dose below.
        "api/tts/doses/confirmations/",
    }
    assert routes == covered


def test_bob_cannot_confirm_alices_dose(world: World) -> None:
    """A confirmation names the phrase in its body: Alice's answers Bob exactly as a random id does."""
    def body(phrase_id: int) -> dict[str, Any]:
        return {"phrase_id": phrase_id, "scheduled_date": "2027-01-04", "scheduled_time": "08:00",
                "confirmed_at": timezone.now().isoformat(), "key": f"bob-{uuid.uuid4().hex}"}

    bob = api_client(world.bob)
    theirs = bob.post("/api/tts/doses/confirmations/", body(world.alice_phrase.id), format="json")
    nothing = bob.post("/api/tts/doses/confirmations/", body(random.randrange(10**9, 2**31)), format="json")
    assert theirs.status_code == 404 and (theirs.status_code, theirs.content) == (nothing.status_code, nothing.content)
    assert not Dose.objects.filter(owner=world.alice).exists()
    for actor in ACTORS.values():
        assert actor(world).post("/api/tts/doses/confirmations/", body(world.alice_phrase.id),
                                 format="json").status_code == 401
    assert not Dose.objects.filter(owner=world.alice).exists()
    # The control: Alice's own confirmation is stored.
    mine = api_client(world.alice).post("/api/tts/doses/confirmations/", body(world.alice_phrase.id), format="json")
    assert mine.status_code == 201 and Dose.objects.get(owner=world.alice).state == "confirmed"
