"""Security events: each is one JSON line on the `voice_tts.security` logger (the handler and
formatter settings.LOGGING gives it), made by the real API calls that cause them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.audio_samples import wav_bytes
from tests.conftest import api_client, redis_keys_delete
from voice_tts.security_log import EventFormatter


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(EventFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def events(settings: Any) -> Iterator[list[dict[str, Any]]]:
    settings.LOGIN_FAILURES_PER_USER_IP = 2
    redis_keys_delete("login:*")
    handler = Lines()
    logger = logging.getLogger("voice_tts.security")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)
    redis_keys_delete("login:*")


def test_security_events_are_json_lines(alice, transactional_db, events):
    client = api_client(None)
    for _ in range(2):
        client.post("/api/auth/login/", {"username": "alice", "password": "wrong"}, format="json")
    token = client.post("/api/auth/login/", {"username": "alice", "password": "alice-pass-1234"},
                        format="json")
    assert token.status_code == 429  # locked for this (username, address)
    redis_keys_delete("login:*")
    token = client.post("/api/auth/login/", {"username": "alice", "password": "alice-pass-1234"},
                        format="json").json()["token"]
    mine = api_client(alice)
    device = mine.post("/api/tts/devices/", {"name": "Pi"}, format="json").json()
    mine.delete(f"/api/tts/devices/{device['id']}/")
    voice = mine.post("/api/tts/voices/", {"voice_file": _upload()}, format="multipart").json()
    mine.delete(f"/api/tts/voices/{voice['id']}/")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.post("/api/auth/logout/").status_code == 204

    by_event = {line["event"]: line for line in events}
    assert list(by_event) == ["login_locked", "token_created", "device_created", "device_revoked",
                              "voice_deleted", "token_revoked"]
    assert by_event["login_locked"]["username"] == "alice" and by_event["login_locked"]["level"] == "WARNING"
    assert by_event["token_created"]["user_id"] == alice.id
    assert by_event["device_revoked"]["device_id"] == device["id"]
    assert by_event["voice_deleted"]["voice_id"] == voice["id"]
    assert token not in json.dumps(events)  # a key never reaches the log, only its first characters
    assert by_event["token_revoked"]["token"] == token[:12]


def _upload() -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("sample.wav", wav_bytes(4.0), content_type="audio/wav")
