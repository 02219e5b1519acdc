"""GET /api/tts/phrases/bundle/: today's phrases with clip URL, sha256, duration, ETag.

End to end: phrases made over real HTTP are pre-generated in the background by the
real worker (no one calls the batch by hand), then the bundle serves them.
"""

from __future__ import annotations

import hashlib
import io
import time

import pytest
import soundfile

from tests.audio_samples import wav_bytes
from voice_tts.models import Clip, ReminderPhrase
from voice_tts.services.voices import voice_create


def wait_bundle(http, *, ready: int, timeout: float = 60.0, voice_id: str | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = http.get("/api/tts/phrases/bundle/").json()
        states = [p["status"] for p in body["phrases"]]
        if states.count("ready") == ready and (voice_id is None or body["voice_id"] == voice_id):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"bundle not ready after {timeout}s: {body}")
        time.sleep(0.2)


@pytest.mark.worker
def test_bundle_serves_pregenerated_clips_with_checksums_and_etag(worker, alice_http, bob_http):
    assert alice_http.upload_voice(4.0).status_code == 201
    for payload in ({"text": "아침 약 드실 시간입니다", "times": ["08:00"]},
                    {"text": "Time for your evening pills", "language": "en", "times": ["20:00"]}):
        assert alice_http.post("/api/tts/phrases/", json=payload).status_code == 201
    alice_http.post("/api/tts/phrases/", json={"text": "paused", "language": "en", "is_active": False})

    body = wait_bundle(alice_http, ready=2)
    assert [p["text"] for p in body["phrases"]] == ["아침 약 드실 시간입니다", "Time for your evening pills"]
    # Pinned by the worker as it stored them (clip_store), not by the bundle's GETs.
    assert {c.cache_key for c in Clip.objects.filter(pinned=True)} == {p["cache_key"] for p in body["phrases"]}
    assert body["phrases"][0]["times"] == ["08:00"] and body["engine"] == "espeak" and body["model_version"]
    for phrase in body["phrases"]:
        audio = alice_http.get(phrase["audio_url"])
        assert audio.status_code == 200
        assert hashlib.sha256(audio.content).hexdigest() == phrase["sha256"]
        samples, rate = soundfile.read(io.BytesIO(audio.content))
        assert abs(len(samples) / rate - phrase["duration_seconds"]) < 0.01
        assert bob_http.get(phrase["audio_url"]).status_code == 404

    first = alice_http.get("/api/tts/phrases/bundle/")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and first.headers["Cache-Control"] == "private, no-cache"
    unchanged = alice_http.get("/api/tts/phrases/bundle/", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["ETag"] == etag
    weak = alice_http.get("/api/tts/phrases/bundle/", headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    assert alice_http.get("/api/tts/phrases/bundle/", headers={"If-None-Match": '"stale"'}).status_code == 200

    # A phrase added later: new ETag at once (pending), and ready without anyone asking.
    alice_http.post("/api/tts/phrases/", json={"text": "Drink some water", "language": "en"})
    changed = alice_http.get("/api/tts/phrases/bundle/", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert wait_bundle(alice_http, ready=3)["phrases"][2]["text"] == "Drink some water"

    assert bob_http.get("/api/tts/phrases/bundle/").json()["phrases"] == []


@pytest.mark.worker
def test_a_new_voice_regenerates_reminders_and_old_clips_stand_in_meanwhile(worker, alice, alice_http):
    first_voice = alice_http.upload_voice(4.0).json()["id"]
    ReminderPhrase.objects.create(owner=alice, text="저녁 약 드세요", language="ko")
    alice_http.post("/api/tts/phrases/", json={"text": "Good night", "language": "en"})
    before = wait_bundle(alice_http, ready=2, voice_id=first_voice)

    second_voice = alice_http.upload_voice(5.0).json()["id"]
    after = wait_bundle(alice_http, ready=2, voice_id=second_voice)
    assert {p["cache_key"] for p in after["phrases"]}.isdisjoint({p["cache_key"] for p in before["phrases"]})
    assert Clip.objects.filter(voice_id=second_voice).count() == 2


def test_without_a_voice_everything_is_pending(alice_api, alice):
    ReminderPhrase.objects.create(owner=alice, text="약 드세요", language="ko", times=["09:00"], days=[6, 7])
    body = alice_api.get("/api/tts/phrases/bundle/").json()
    assert body["voice_id"] is None
    assert body["phrases"] == [{"id": body["phrases"][0]["id"], "text": "약 드세요", "language": "ko",
                                "times": ["09:00"], "days": [6, 7], "status": "pending", "cache_key": None,
                                "audio_url": None, "sha256": None, "duration_seconds": None}]


def test_checksums_of_older_clips_are_filled_in_by_migration_0010_and_the_bundle_only_reads(alice_api, alice):
    import importlib

    import numpy as np
    from django.apps import apps
    from django.core.files.storage import default_storage

    from voice_tts.services.clips import clip_cache_key, clip_store
    from voice_tts.worker import status

    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    version = status.engine_version_current(engine="espeak") or "unknown-version"
    clips = []
    for text in ("약 드세요", "물 드세요"):
        ReminderPhrase.objects.create(owner=alice, text=text, language="ko")
        key = clip_cache_key(voice_id=voice.id, text=text, language="ko", engine="espeak",
                             model_version=version, params={})
        clips.append(clip_store(voice=voice, cache_key=key, text=text, language="ko", params={}, engine="espeak",
                                model_version=version, samples=np.zeros(2205, np.int16) + 100, sample_rate=22050))
    kept, lost = clips
    expected = kept.sha256
    Clip.objects.filter(pk__in=[kept.pk, lost.pk]).update(sha256="")  # as if stored before the column existed
    default_storage.delete(lost.audio.name)  # and one whose file is already gone

    # The bundle no longer computes a checksum on a GET (it writes nothing): not servable until checksummed.
    assert [p["status"] for p in alice_api.get("/api/tts/phrases/bundle/").json()["phrases"]] == ["pending"] * 2
    assert set(Clip.objects.values_list("sha256", flat=True)) == {""}

    migration = importlib.import_module("voice_tts.migrations.0010_clip_sha256_backfill")
    migration.clip_checksums_backfill(apps, None)
    assert Clip.objects.get(pk=kept.pk).sha256 == expected
    assert Clip.objects.get(pk=lost.pk).sha256 == ""  # file gone: left blank, the entry stays pending

    entries = alice_api.get("/api/tts/phrases/bundle/").json()["phrases"]
    assert [p["status"] for p in entries] == [status_of(kept, version), "pending"]
    assert entries[0]["sha256"] == expected and entries[0]["duration_seconds"] == 0.1


def status_of(clip: Clip, version: str) -> str:
    # "ready" when a worker of this run published the model version, else the clip stands in as "stale".
    return "ready" if clip.model_version == version and version != "unknown-version" else "stale"


@pytest.mark.worker
def test_bundle_in_opus_names_the_opus_files_with_their_checksums_and_sizes(worker, alice_http, bob_http):
    assert alice_http.upload_voice(4.0).status_code == 201
    for text in ("아침 약 드실 시간입니다", "점심 약 드세요"):
        assert alice_http.post("/api/tts/phrases/", json={"text": text, "times": ["08:00"]}).status_code == 201
    wav_body = wait_bundle(alice_http, ready=2)
    wav_etag = alice_http.get("/api/tts/phrases/bundle/").headers["ETag"]
    # The WAV bundle is what it always was: no new fields, so a Pi's saved ETag stays valid.
    assert "audio_format" not in wav_body and all("size_bytes" not in p for p in wav_body["phrases"])
    assert alice_http.get("/api/tts/phrases/bundle/", params={"format": "wav"}).json() == wav_body

    response = alice_http.get("/api/tts/phrases/bundle/", params={"format": "opus"})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    body, etag = response.json(), response.headers["ETag"]
    assert body["audio_format"] == "opus" and etag != wav_etag
    for entry, wav_entry in zip(body["phrases"], wav_body["phrases"], strict=True):
        assert entry["status"] == "ready" and entry["cache_key"] == wav_entry["cache_key"]
        assert entry["audio_url"] == wav_entry["audio_url"] + "?format=opus"
        audio = alice_http.get(entry["audio_url"])
        assert audio.status_code == 200 and audio.headers["Content-Type"] == "audio/ogg; codecs=opus"
        assert hashlib.sha256(audio.content).hexdigest() == entry["sha256"] != wav_entry["sha256"]
        assert len(audio.content) == entry["size_bytes"]
        samples, rate = soundfile.read(io.BytesIO(audio.content))
        assert abs(len(samples) / rate - entry["duration_seconds"]) < 0.01
        assert bob_http.get(entry["audio_url"]).status_code == 404
    # Encoded once: the next bundle names the same files (Opus bytes differ on every encode), and its ETag holds.
    again = alice_http.get("/api/tts/phrases/bundle/", params={"format": "opus"}, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert alice_http.get("/api/tts/phrases/bundle/", params={"format": "opus"}).json() == body
    mp3 = alice_http.get("/api/tts/phrases/bundle/", params={"format": "mp3"}).json()
    assert {p["sha256"] for p in mp3["phrases"]}.isdisjoint({p["sha256"] for p in body["phrases"]})
    assert bob_http.get("/api/tts/phrases/bundle/", params={"format": "opus"}).json()["phrases"] == []
