"""POST/GET /api/tts/voices/ and GET/DELETE /api/tts/voices/<id>/."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile
from django.conf import settings

from tests.audio_samples import silence_bytes, wav_bytes
from voice_tts.models import Voice


def upload(api, data: bytes, name: str = "sample.wav", **fields):
    return api.post("/api/tts/voices/", {"voice_file": _file(data, name), **fields}, format="multipart")


def _file(data: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="audio/wav")


def test_upload_normalises_and_activates(alice_api, alice):
    # Stereo, 44.1 kHz, quiet, with a second of silence each side.
    data = wav_bytes(4.0, rate=44100, channels=2, lead_silence=1.0, tail_silence=1.0)
    response = upload(alice_api, data, transcript="  안녕하세요  할머니 ", language="ko")
    assert response.status_code == 201, response.content
    body = response.json()
    assert 3.9 < body["duration_seconds"] < 4.3  # silence trimmed (small pad kept)
    assert body["transcript"] == "안녕하세요 할머니" and body["language"] == "ko" and body["is_active"]

    voice = Voice.objects.get(id=body["id"])
    stored = Path(settings.MEDIA_ROOT) / voice.audio.name
    info = soundfile.info(stored)
    assert (info.channels, info.samplerate, info.subtype) == (1, settings.VOICE_SAMPLE_RATE, "PCM_16")
    samples, rate = soundfile.read(stored)
    loudness = pyloudnorm.Meter(rate).integrated_loudness(samples)
    assert abs(loudness - settings.VOICE_TARGET_LUFS) < 1.0
    assert np.max(np.abs(samples)) < 1.0
    assert voice.audio.name == f"voices/{alice.id}/{voice.id}.wav"  # generated, not the upload's name


def test_new_voice_deactivates_but_keeps_the_old_one(alice_api):
    first = upload(alice_api, wav_bytes(4.0)).json()
    second = upload(alice_api, wav_bytes(5.0)).json()
    listed = alice_api.get("/api/tts/voices/").json()["results"]
    assert [v["id"] for v in listed] == [second["id"], first["id"]]
    assert [v["is_active"] for v in listed] == [True, False]


def test_list_shows_only_my_voices(alice_api, bob_api):
    upload(alice_api, wav_bytes(4.0))
    assert bob_api.get("/api/tts/voices/").json()["results"] == []


def test_delete_removes_row_and_files(alice_api, bob_api, django_capture_on_commit_callbacks):
    voice_id = upload(alice_api, wav_bytes(4.0)).json()["id"]
    voice = Voice.objects.get(id=voice_id)
    path = Path(settings.MEDIA_ROOT) / voice.audio.name
    sidecar = path.with_name(path.name + ".analysis.json")  # what an engine may derive
    sidecar.write_text("{}")
    assert path.exists()

    assert bob_api.delete(f"/api/tts/voices/{voice_id}/").status_code == 404
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert alice_api.delete(f"/api/tts/voices/{voice_id}/").status_code == 204
        assert path.exists()  # files go only after the commit
    # After the commit: the files go, and the owner's result-cache entries are invalidated again.
    assert len(callbacks) == 2
    assert not Voice.objects.filter(id=voice_id).exists()
    assert not path.exists() and not sidecar.exists()
    assert alice_api.get(f"/api/tts/voices/{voice_id}/").status_code == 404


@pytest.mark.parametrize(
    ("data", "name", "status", "code"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEnot really audio at all" * 10, "fake.wav", 415, "unsupported_audio"),
        (b"%PDF-1.4 definitely a document", "voice.wav", 415, "unsupported_audio"),
        (b"", "empty.wav", 400, "empty_file"),
        (wav_bytes(2.0), "short.wav", 400, "clip_too_short"),
        (wav_bytes(12.0), "long.wav", 400, "clip_too_long"),
        (silence_bytes(5.0), "silence.wav", 400, "silent_audio"),
        (wav_bytes(2.0, lead_silence=3.0), "mostly_silence.wav", 400, "clip_too_short"),
    ],
)
def test_rejections_have_codes_and_leave_nothing(alice_api, data, name, status, code):
    response = upload(alice_api, data, name)
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert Voice.objects.count() == 0
    voices_dir = Path(settings.MEDIA_ROOT) / "voices"
    assert not voices_dir.exists() or not any(p.is_file() for p in voices_dir.rglob("*"))


def test_12_seconds_with_silence_around_5_seconds_of_speech_is_accepted(alice_api):
    response = upload(alice_api, wav_bytes(5.0, lead_silence=4.0, tail_silence=3.0))
    assert response.status_code == 201
    assert 4.9 < response.json()["duration_seconds"] < 5.3


def test_decoding_decides_not_the_extension(alice_api):
    flac = wav_bytes(4.0, fmt="FLAC")
    response = upload(alice_api, flac, "recording.mp3")
    assert response.status_code == 201, response.content


def test_missing_file(alice_api):
    response = alice_api.post("/api/tts/voices/", {"transcript": "hi"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["code"] == "missing_file"


def test_too_large_is_413(alice_api, settings):
    settings.VOICE_MAX_UPLOAD_BYTES = 50_000
    response = upload(alice_api, wav_bytes(4.0))
    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"


def test_unsupported_language(alice_api):
    response = upload(alice_api, wav_bytes(4.0), language="xx")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"


def test_nan_samples_are_refused(alice_api):
    samples = np.full(16000 * 4, np.nan, dtype=np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 16000, format="WAV", subtype="FLOAT")
    response = upload(alice_api, buffer.getvalue())
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_audio"


def test_anonymous_cannot_upload(client):
    response = client.post("/api/tts/voices/", {"voice_file": _file(wav_bytes(4.0), "a.wav")})
    assert response.status_code == 401
