"""AUDIO_SENDFILE: the view authorises, the front server (nginx / Apache) sends the bytes."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from tests.audio_samples import wav_bytes
from voice_tts.models import Clip
from voice_tts.services.voices import voice_create


@pytest.fixture
def stored_clip(alice: Any) -> Clip:
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    key = "c" * 64
    name = default_storage.save(f"clips/{alice.id}/{key}.wav", ContentFile(wav_bytes(1.0)))
    return Clip.objects.create(owner_id=alice.id, voice=voice, cache_key=key, text="t", language="en", params={},
                               engine="tone", model_version="t", audio=name, duration_seconds=1.0, sample_rate=44100)


def test_default_streams_the_file(alice_api, stored_clip):
    response = alice_api.get(f"/api/tts/cache/{stored_clip.cache_key}/audio/")
    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    assert b"".join(response.streaming_content) == default_storage.open(stored_clip.audio.name).read()
    assert "X-Accel-Redirect" not in response


def test_x_accel_redirect_hands_the_file_to_nginx(alice_api, stored_clip, settings):
    settings.AUDIO_SENDFILE = "x-accel-redirect"
    settings.AUDIO_ACCEL_REDIRECT_PREFIX = "/protected-media/"
    response = alice_api.get(f"/api/tts/cache/{stored_clip.cache_key}/audio/")
    assert response.status_code == 200 and response.content == b""
    assert response["X-Accel-Redirect"] == f"/protected-media/{stored_clip.audio.name}"
    assert response["Content-Type"] == "audio/wav"
    assert response["Cache-Control"] == "private, max-age=86400"
    assert f'filename="{stored_clip.cache_key}.wav"' in response["Content-Disposition"]


def test_x_sendfile_names_the_absolute_path(alice_api, stored_clip, settings):
    settings.AUDIO_SENDFILE = "x-sendfile"
    response = alice_api.get(f"/api/tts/cache/{stored_clip.cache_key}/audio/")
    assert response.status_code == 200 and response["X-Sendfile"] == default_storage.path(stored_clip.audio.name)


def test_other_users_get_404_and_missing_file_410_with_sendfile(alice_api, bob_api, stored_clip, settings):
    settings.AUDIO_SENDFILE = "x-accel-redirect"
    path = f"/api/tts/cache/{stored_clip.cache_key}/audio/"
    assert bob_api.get(path).status_code == 404
    default_storage.delete(stored_clip.audio.name)
    response = alice_api.get(path)
    assert response.status_code == 410 and response.json()["code"] == "audio_missing"
