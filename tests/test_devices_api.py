"""Devices (the Pi): POST/GET /api/tts/devices/, DELETE /api/tts/devices/<id>/, and what a
device's token may do. Through the whole Django/DRF stack on the real Redis, two users."""

from __future__ import annotations

from typing import Any

import pytest

from tests.audio_samples import wav_bytes
from tests.conftest import api_client
from voice_tts.models import AccessToken
from voice_tts.services.voices import voice_create


def _device_client(user: Any, name: str = "거실 Pi") -> tuple[Any, dict[str, Any]]:
    created = api_client(user).post("/api/tts/devices/", {"name": name}, format="json")
    assert created.status_code == 201, created.content
    client = api_client(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {created.json()['token']}")
    return client, created.json()


def test_create_list_revoke(alice, bob, transactional_db):
    pi, created = _device_client(alice)
    assert set(created) == {"id", "name", "created_at", "last_seen_at", "token"} and created["name"] == "거실 Pi"
    assert pi.get("/api/tts/phrases/bundle/").status_code == 200
    listed = api_client(alice).get("/api/tts/devices/").json()["results"]
    assert [d["id"] for d in listed] == [created["id"]] and "token" not in listed[0]
    assert listed[0]["last_seen_at"] is not None  # its use was recorded
    assert api_client(bob).get("/api/tts/devices/").json()["results"] == []
    # Bob cannot revoke Alice's device: the same 404 as a random id.
    assert api_client(bob).delete(f"/api/tts/devices/{created['id']}/").status_code == 404
    assert api_client(bob).delete("/api/tts/devices/999999/").status_code == 404
    assert api_client(alice).delete(f"/api/tts/devices/{created['id']}/").status_code == 204
    assert pi.get("/api/tts/phrases/bundle/").status_code == 401  # at once, although it was cached
    assert not AccessToken.objects.filter(id=created["id"]).exists()


def test_a_device_name_is_required(alice, transactional_db):
    response = api_client(alice).post("/api/tts/devices/", {"name": "   "}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "device_name_empty"


def test_what_a_device_may_do(alice, transactional_db):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    pi, _ = _device_client(alice)
    assert pi.get("/api/tts/phrases/bundle/").status_code == 200
    created = pi.post("/api/tts/jobs/", {"text": "약 드실 시간입니다"}, format="json")
    assert created.status_code == 202
    assert pi.get(f"/api/tts/jobs/{created.json()['id']}/").status_code == 200
    assert pi.get(f"/api/tts/jobs/{created.json()['id']}/audio/").status_code == 409  # not made yet
    assert pi.post("/api/tts/generate/?wait=0", {"text": "저녁 약"}, format="json").status_code == 202
    assert pi.get(f"/api/tts/cache/{'0' * 64}/").status_code == 404  # allowed, just no such clip


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/api/tts/voices/", None),
    ("post", "/api/tts/voices/", {}),
    ("post", "/api/tts/upload-voice/", {}),
    ("get", "/api/tts/phrases/", None),
    ("post", "/api/tts/phrases/", {"text": "Bob was here"}),
    ("get", "/api/tts/webhook-secret/", None),
    ("post", "/api/tts/webhook-secret/rotate/", {}),
    ("get", "/api/tts/devices/", None),
    ("post", "/api/tts/devices/", {"name": "another"}),
    ("post", "/api/auth/logout/", {}),
])
def test_everything_else_is_device_not_allowed(alice, transactional_db, method, path, body):
    pi, _ = _device_client(alice)
    response = getattr(pi, method)(path, body, format="json") if body is not None else getattr(pi, method)(path)
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "device_not_allowed"


def test_object_routes_are_closed_to_devices_too(alice, transactional_db):
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    pi, created = _device_client(alice)
    for method, path in (("get", f"/api/tts/voices/{voice.id}/"), ("delete", f"/api/tts/voices/{voice.id}/"),
                         ("delete", f"/api/tts/devices/{created['id']}/"), ("get", "/api/tts/phrases/1/")):
        response = getattr(pi, method)(path)
        assert (response.status_code, response.json()["code"]) == (403, "device_not_allowed"), path
    assert api_client(alice).get(f"/api/tts/voices/{voice.id}/").status_code == 200  # nothing was touched
