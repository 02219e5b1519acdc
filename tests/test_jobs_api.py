"""POST /api/tts/jobs/ and GET /api/tts/jobs/<id>/(audio/), end to end through a real
Celery worker process on the local Redis, over real HTTP (live_server)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import soundfile

from voice_tts.models import Clip, Job
from voice_tts.services.clips import clip_uses_flush

pytestmark = pytest.mark.worker


def test_upload_job_poll_audio(worker, alice_http):
    assert alice_http.upload_voice(4.0).status_code == 201

    created = alice_http.post("/api/tts/jobs/", json={"text": "약 드실 시간입니다", "language": "ko"})
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["status"] == "queued" and body["cache_hit"] is False
    assert created.headers["Location"] == f"/api/tts/jobs/{body['id']}/"

    done = alice_http.wait_job(body["id"])
    assert done["status"] == "succeeded", done
    assert done["error"] is None and done["processing_time_ms"] is not None
    assert done["started_at"] and done["finished_at"]

    audio = alice_http.get(done["audio_url"])
    assert audio.status_code == 200 and audio.headers["Content-Type"] == "audio/wav"
    samples, rate = soundfile.read(io.BytesIO(audio.content), dtype="int16")
    info = soundfile.info(io.BytesIO(audio.content))
    assert info.subtype == "PCM_16" and info.channels == 1
    assert rate == 22050  # espeak-ng's native rate
    # Eight Korean syllables spoken: well over half a second, far under ten.
    assert 0.6 < len(samples) / rate < 10
    assert abs(done["duration_seconds"] - len(samples) / rate) < 0.01
    assert samples.std() > 100  # speech, not silence


def test_same_request_again_is_a_cache_hit_without_synthesis(worker, alice_http):
    alice_http.upload_voice(4.0)
    created = alice_http.post("/api/tts/jobs/", json={"text": "Time for your pills", "language": "en"})
    first = alice_http.wait_job(created.json()["id"])
    assert first["status"] == "succeeded"
    syntheses = worker.syntheses()

    jobs_before = Job.objects.count()
    again = alice_http.post("/api/tts/jobs/", json={"text": "  Time for   your pills ", "language": "en"})
    assert again.status_code == 200, again.text
    body = again.json()
    clip = Clip.objects.get(cache_key=first["cache_key"])
    assert body == {"id": None, "status": "succeeded", "cache_hit": True, "clip_id": clip.id,
                    "cache_key": first["cache_key"], "duration_seconds": clip.duration_seconds,
                    "audio_url": body["audio_url"], "text": "Time for your pills", "language": "en"}
    assert body["audio_url"].endswith(f"/api/tts/cache/{first['cache_key']}/audio/")
    assert alice_http.get(body["audio_url"]).content == alice_http.get(first["audio_url"]).content
    assert worker.syntheses() == syntheses
    assert Job.objects.count() == jobs_before  # a hit writes no row
    # The use is counted in Redis and reaches the row with the next flush.
    assert clip.access_count == 0
    assert clip_uses_flush() == 1
    clip.refresh_from_db()
    assert clip.access_count == 1 and clip.last_accessed_at is not None

    uncached = {"text": "Time for your pills", "language": "en", "use_cache": False}
    fresh = alice_http.post("/api/tts/jobs/", json=uncached)
    assert fresh.status_code == 202
    assert alice_http.wait_job(fresh.json()["id"])["cache_hit"] is False
    assert worker.syntheses() == syntheses + 1
    assert Clip.objects.filter(cache_key=first["cache_key"]).count() == 1


def test_twenty_concurrent_identical_requests_make_one_clip(worker, alice_http, settings):
    alice_http.upload_voice(4.0)
    syntheses = worker.syntheses()
    text = {"text": "저녁 약 드실 시간입니다", "language": "ko"}

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: alice_http.post("/api/tts/jobs/", json=text), range(20)))
    assert all(r.status_code in (200, 202) for r in responses), [r.text for r in responses]
    # A 200 is a cache hit (no job to wait for); a 202 is a job.
    finished = [r.json() if r.status_code == 200 else alice_http.wait_job(r.json()["id"]) for r in responses]

    assert {job["status"] for job in finished} == {"succeeded"}
    assert len({job["cache_key"] for job in finished}) == 1
    assert sum(1 for job in finished if not job["cache_hit"]) == 1
    assert worker.syntheses() == syntheses + 1
    assert Clip.objects.count() == 1
    files = sorted(p.name for p in (Path(settings.MEDIA_ROOT) / "clips").rglob("*") if p.is_file())
    assert files == [f"{finished[0]['cache_key']}.wav"]


def test_job_for_a_user_without_voice_is_refused(alice_api):
    response = alice_api.post("/api/tts/jobs/", {"text": "hello"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "no_active_voice"


@pytest.mark.parametrize(
    ("text", "code"),
    [("", "text_empty"), ("   \n\t ", "text_empty"), ("가" * 501, "text_too_long"),
     ("약\u202e먹기", "text_invalid_characters"), ("\x07beep", "text_invalid_characters"), ("?!…", "text_unspeakable")],
)
def test_bad_text_is_refused_with_a_code(alice_api, alice, text, code):
    from tests.audio_samples import wav_bytes
    from voice_tts.services.voices import voice_create

    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    response = alice_api.post("/api/tts/jobs/", {"text": text}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert Job.objects.count() == 0


def test_500_characters_is_accepted(alice_api, alice, django_capture_on_commit_callbacks):
    from tests.audio_samples import wav_bytes
    from voice_tts.services.voices import voice_create

    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice_api.post("/api/tts/jobs/", {"text": "가" * 500}, format="json")
    assert response.status_code == 202
    # Both only once the row is committed: the job's state kept for polling, then its message sent (fair turns).
    assert len(callbacks) == 2


@pytest.mark.parametrize(
    "params",
    [{"speed": 3}, {"seed": -1}, {"top_k": 0}, {"temperature": 0}, {"volume": 1}],
)
def test_bad_params_are_refused(alice_api, params):
    response = alice_api.post("/api/tts/jobs/", {"text": "hi", "params": params}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"


def test_webhook_url_must_be_http(alice_api):
    response = alice_api.post("/api/tts/jobs/", {"text": "hi", "webhook_url": "file:///etc/passwd"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"


def test_other_users_job_and_audio_are_404(worker, alice_http, bob_http):
    alice_http.upload_voice(4.0)
    job = alice_http.wait_job(alice_http.post("/api/tts/jobs/", json={"text": "hello", "language": "en"}).json()["id"])
    assert job["status"] == "succeeded"
    for path in (f"/api/tts/jobs/{job['id']}/", f"/api/tts/jobs/{job['id']}/audio/",
                 f"/api/tts/cache/{job['cache_key']}/", f"/api/tts/cache/{job['cache_key']}/audio/"):
        assert bob_http.get(path).status_code == 404, path
        assert bob_http.get(path).json()["code"] == "not_found"
        assert alice_http.get(path).status_code == 200, path


def test_unauthenticated_requests_are_401(client):
    for path in ("/api/tts/jobs/", "/api/tts/voices/", "/api/tts/webhook-secret/"):
        response = client.get(path) if path != "/api/tts/jobs/" else client.post(path, {"text": "x"})
        assert response.status_code == 401, path
        assert response.json()["code"] == "not_authenticated"
