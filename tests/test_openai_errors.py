"""The OpenAI-compatible routes' refusals, listings and error envelope, in process (no worker:
every request here is answered before anything is queued). The SDK against a live stack is
tests/test_openai_speech.py."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.audio_samples import wav_bytes
from tests.conftest import redis_keys_delete
from voice_tts.models import Job
from voice_tts.services.tokens import device_create
from voice_tts.services.voices import voice_create

SPEECH = "/v1/audio/speech"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def speech(client: APIClient, **body: Any) -> Any:
    payload = {"model": "tts-1", "voice": "alloy", "input": "약 드세요.", **body}
    return client.post(SPEECH, payload, format="json", HTTP_ACCEPT="application/octet-stream")


def assert_envelope(response: Any, status: int, *, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and isinstance(error["message"], str)
    assert error["type"] == {429: "requests"}.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


def test_a_bad_or_missing_key_is_401_in_the_envelope(db):
    assert_envelope(speech(bearer("not-a-real-token")), 401, code="invalid_api_key")
    missing = speech(APIClient())
    assert_envelope(missing, 401, code="missing_api_key")
    assert missing["WWW-Authenticate"] == "Bearer"
    assert_envelope(bearer("nope").get("/v1/models"), 401)


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"input": "가" * 4097}, "max_length", "input"),
        ({"input": ""}, "blank", "input"),
        ({"input": "   "}, "text_empty", "input"),
        ({"input": "!!! …"}, "text_unspeakable", "input"),
        ({"input": "약\u200b드세요"}, "text_invalid_characters", "input"),
        ({"response_format": "aac"}, "unsupported_response_format", "response_format"),
        ({"response_format": "ogg"}, "invalid_choice", "response_format"),
        ({"speed": 4.0}, "max_value", "speed"),
        ({"speed": 0.25}, "min_value", "speed"),
        ({"model": "whisper-1"}, "invalid_choice", "model"),
        ({"stream_format": "chunks"}, "invalid_choice", "stream_format"),
        ({"voice": {"name": "x"}}, "invalid", "voice"),
        ({"voice": 7}, "invalid", "voice"),
    ],
)
def test_bad_input_is_400_naming_the_field(alice, body, code, param):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    assert_envelope(speech(bearer(alice.token), **body), 400, code=code, param=param)
    assert not Job.objects.exists()  # refused whole: nothing queued


def test_unknown_and_other_users_voices_are_404(alice, bob):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    bobs = voice_create(owner_id=bob.id, data=wav_bytes(4.0))
    client = bearer(alice.token)
    for voice in (str(bobs.id), "00000000-0000-0000-0000-000000000000", "my-voice", {"id": str(bobs.id)}):
        assert_envelope(speech(client, voice=voice), 404, code="voice_not_found", param="voice")
    assert not Job.objects.exists()


def test_no_enrolled_voice_is_a_clear_400(alice):
    error = assert_envelope(speech(bearer(alice.token)), 400, code="no_active_voice", param="voice")
    assert "voice" in error["message"].lower()


def test_a_devices_token_is_refused(alice):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    _, token = device_create(owner_id=alice.id, name="Pi")
    assert_envelope(speech(bearer(token)), 403, code="device_not_allowed")


def test_throttled_is_429_with_retry_after(alice, settings):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "speech": "1/min"}
    redis_keys_delete("throttle:speech:*")  # user ids repeat across tests: start this one's window empty
    client = bearer(alice.token)
    first = speech(client, voice="nobody")  # counted like any request (a 404 here)
    assert first.status_code == 404
    throttled = speech(client)
    assert_envelope(throttled, 429, code="rate_limit_exceeded")
    assert int(throttled["Retry-After"]) > 0


def test_unrouted_and_wrong_method_v1_urls_answer_the_envelope(alice):
    client = bearer(alice.token)
    assert_envelope(client.get("/v1/audio/nothing-here"), 404, code="not_found")
    assert_envelope(client.get(SPEECH), 405)
    assert_envelope(client.post(SPEECH, "input=x", content_type="application/x-www-form-urlencoded"), 415)
    assert_envelope(client.post(SPEECH, "{not json", content_type="application/json"), 400)


def test_the_rest_of_the_api_keeps_code_and_message(alice):
    response = APIClient().post("/api/tts/jobs/", {"text": "x"}, format="json")
    assert response.status_code == 401 and set(response.json()) == {"code", "message"}
    missing = bearer(alice.token).get("/api/tts/nothing-here/")
    assert missing.status_code == 404 and missing.json() == {"code": "not_found", "message": "Not found."}


def test_models_list_in_openais_shape(alice, settings):
    client = bearer(alice.token)
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    ids = [model["id"] for model in body["data"]]
    assert ids == ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", settings.TTS_ENGINE]
    assert all(model["object"] == "model" and isinstance(model["created"], int) for model in body["data"])
    assert client.get("/v1/models/tts-1-hd").json()["id"] == "tts-1-hd"
    assert_envelope(client.get("/v1/models/gpt-4"), 404, code="model_not_found")


def test_voices_list_is_the_callers_own(alice, bob):
    first = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    second = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    voice_create(owner_id=bob.id, data=wav_bytes(4.0))
    body = bearer(alice.token).get("/v1/audio/voices").json()
    assert [voice["id"] for voice in body["voices"]] == [str(second.id), str(first.id)]  # newest first
    assert [voice["is_active"] for voice in body["voices"]] == [True, False]
    assert "(active)" in body["voices"][0]["name"]
    assert "alloy" in body["builtin_voices"]
    # The plain API's `Token` keyword works here too.
    token_client = APIClient()
    token_client.credentials(HTTP_AUTHORIZATION=f"Token {bob.token}")
    assert len(token_client.get("/v1/audio/voices").json()["voices"]) == 1
