"""POST /api/tts/generate/ (the seed's contract) and POST /api/tts/upload-voice/."""

from __future__ import annotations

import base64
import io

import pytest
import soundfile

from tests.audio_samples import wav_bytes

pytestmark = pytest.mark.worker


def test_upload_voice_keeps_the_seed_contract(alice_http):
    ok = alice_http.post("/api/tts/upload-voice/", files={"voice_file": ("v.wav", wav_bytes(4.0))})
    assert ok.status_code == 201
    body = ok.json()
    assert body["success"] is True and body["voice_id"] and body["message"]

    bad = alice_http.post("/api/tts/upload-voice/", files={"voice_file": ("v.wav", wav_bytes(1.0))})
    assert bad.status_code == 400
    assert bad.json() | {"message": ""} == {"success": False, "code": "clip_too_short", "message": ""}


def test_generate_waits_and_answers_the_seed_shape(worker, alice_http):
    alice_http.upload_voice(4.0)
    response = alice_http.post("/api/tts/generate/?wait=20&format=base64", json={"text": "약 드실 시간입니다"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["cache_hit"] is False
    assert body["text_length"] == len("약 드실 시간입니다")
    assert body["processing_time_ms"] >= 0
    audio = base64.b64decode(body["audio_base64"])
    assert audio == alice_http.get(body["audio_url"]).content
    assert soundfile.info(io.BytesIO(audio)).duration > 0.5

    again = alice_http.post("/api/tts/generate/", json={"text": "약 드실 시간입니다"}).json()
    assert again["success"] is True and again["cache_hit"] is True and "audio_base64" not in again


def test_generate_without_waiting_answers_202_with_the_job(worker, alice_http):
    alice_http.upload_voice(4.0)
    response = alice_http.post("/api/tts/generate/?wait=0", json={"text": "pending please", "language": "en"})
    assert response.status_code == 202
    body = response.json()
    assert body["success"] is False and body["status"] == "queued"
    assert alice_http.wait_job(body["job_id"])["status"] == "succeeded"


def test_generate_validates_like_jobs(alice_http):
    response = alice_http.post("/api/tts/generate/", json={"text": ""})
    assert response.status_code == 400
    assert response.json()["code"] == "text_empty"
