"""The worker stores a new clip in the formats its owner's devices ask for (services/device_formats.py), so the Pi's
bundle fetch encodes nothing.

The job runs in this process through the worker's own service (`job_run`) with the real `tone` engine, the real
Redis lock and real files; the bundle is fetched through the real DRF view with the Pi's device token. What is
proved is the order of events, never a timing: the device's sync recorded its format, the worker's run of the job
ended with the job succeeded and the encoding stored, and the bundle fetched afterwards named that stored file and
left every file as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import soundfile
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.audio_samples import wav_bytes
from voice_tts.models import AccessToken, Clip, ClipEncoding, Job
from voice_tts.redis_client import redis_client
from voice_tts.services import clip_formats
from voice_tts.services.device_formats import device_audio_format_record, owner_device_formats
from voice_tts.services.jobs import job_run
from voice_tts.services.phrases import phrase_create
from voice_tts.services.tokens import device_create
from voice_tts.services.voices import voice_create
from voice_tts.worker import runtime
from voice_tts.worker.status import engine_version_key, engine_version_publish

TEXT = "Take your pills now."


@pytest.fixture
def tone(db: Any, settings: Any) -> Iterator[Any]:
    """The tone engine loaded in this process, and published as the deployment's engine (as a worker does), so
    the bundle names its clips `ready`."""
    settings.TTS_ENGINE = "tone"
    runtime.engine_start(name="tone", queues=["synthesis"])
    engine = runtime.engine_get()
    engine_version_publish(engine="tone", model_version=engine.model_version)
    yield engine
    redis_client().delete(engine_version_key("tone"))


def _household(user: Any) -> tuple[APIClient, int]:
    """A voice, a reminder phrase and a Pi (its API client, its token row's id)."""
    voice_create(owner_id=user.id, data=wav_bytes(4.0))
    phrase_create(owner_id=user.id, text=TEXT, language="en", times=["08:00"])
    device, key = device_create(owner_id=user.id, name="Pi")
    pi = APIClient()
    pi.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return pi, device.id


def _synthesise(user: Any) -> Clip:
    voice = user.voices.get(is_active=True)
    job = Job.objects.create(owner=user, voice=voice, text=TEXT, language="en")
    job_run(job_id=job.id, task_id=f"task-{job.id}")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.error_code, job.error_message)
    return job.clip


def _files(user: Any) -> dict[str, int]:
    """Every file of the owner's clips: name -> mtime (ns)."""
    folder = Path(default_storage.path(f"clips/{user.id}"))
    return {path.name: os.stat(path).st_mtime_ns for path in sorted(folder.iterdir())}


def _encodings(clip: Clip) -> dict[str, tuple[int, str, str]]:
    return {e.audio_format: (e.id, e.audio.name, e.sha256) for e in ClipEncoding.objects.filter(clip=clip)}


def test_a_pis_format_is_stored_by_the_worker_and_the_bundle_then_encodes_nothing(tone, alice):
    pi, device_id = _household(alice)
    first = pi.get("/api/tts/phrases/bundle/", {"format": "opus"})
    assert first.status_code == 200
    assert [entry["status"] for entry in first.json()["phrases"]] == ["pending"]
    assert AccessToken.objects.get(id=device_id).audio_format == "opus"  # the sync recorded it

    clip = _synthesise(alice)
    # The worker's run has ended, the job succeeded: its opus encoding is stored, made from this WAV, and no other.
    stored = _encodings(clip)
    assert list(stored) == ["opus"]
    encoding = ClipEncoding.objects.get(clip=clip, audio_format="opus")
    assert encoding.source_sha256 == clip.sha256
    with default_storage.open(encoding.audio.name, "rb") as file:
        data = file.read()
    assert data[:4] == b"OggS" and len(data) == encoding.size_bytes
    files_before = _files(alice)

    bundle = pi.get("/api/tts/phrases/bundle/", {"format": "opus"})
    assert bundle.status_code == 200
    [entry] = bundle.json()["phrases"]
    assert entry["status"] == "ready" and entry["audio_url"].endswith("?format=opus")
    assert (entry["sha256"], entry["size_bytes"]) == (encoding.sha256, encoding.size_bytes)
    # The fetch made no encoding: the same row and file, no file added or rewritten.
    assert _encodings(clip) == stored
    assert _files(alice) == files_before

    # The ETag guarantee holds: the same bundle is a 304 with the same tag.
    again = pi.get("/api/tts/phrases/bundle/", {"format": "opus"}, HTTP_IF_NONE_MATCH=bundle["ETag"])
    assert again.status_code == 304 and again["ETag"] == bundle["ETag"]
    # And the file the entry names is the one the Pi downloads, checksum and all.
    audio = pi.get(entry["audio_url"])
    assert audio.status_code == 200 and b"".join(audio.streaming_content) == data


def test_recording_writes_only_when_the_format_changes(tone, alice):
    pi, device_id = _household(alice)
    pi.get("/api/tts/phrases/bundle/", {"format": "opus"})
    with CaptureQueriesContext(connection) as steady:
        assert pi.get("/api/tts/phrases/bundle/", {"format": "opus"}).status_code == 200
    assert not [q["sql"] for q in steady.captured_queries if "voice_tts_accesstoken" in q["sql"]]

    assert pi.get("/api/tts/phrases/bundle/", {"format": "mp3"}).status_code == 200
    assert AccessToken.objects.get(id=device_id).audio_format == "mp3"
    clip = _synthesise(alice)
    assert list(_encodings(clip)) == ["mp3"]  # the device's latest choice, not the one before


def test_other_users_devices_and_caregiver_tokens_choose_nothing_for_this_user(tone, alice, bob):
    alice_pi, _ = _household(alice)
    bob_pi, _ = _household(bob)
    assert bob_pi.get("/api/tts/phrases/bundle/", {"format": "mp3"}).status_code == 200
    # Alice's own caregiver token asking for flac is no device: nothing is recorded.
    caregiver = APIClient()
    caregiver.credentials(HTTP_AUTHORIZATION=f"Token {alice.token}")
    assert caregiver.get("/api/tts/phrases/bundle/", {"format": "flac"}).status_code == 200
    assert alice_pi.get("/api/tts/phrases/bundle/").status_code == 200  # her Pi plays WAV

    alice_clip, bob_clip = _synthesise(alice), _synthesise(bob)
    assert _encodings(alice_clip) == {}
    assert list(_encodings(bob_clip)) == ["mp3"]


def test_an_encoding_that_fails_leaves_the_job_succeeded_and_the_bundle_makes_it(tone, alice, monkeypatch):
    pi, _ = _household(alice)
    pi.get("/api/tts/phrases/bundle/", {"format": "flac"})

    def refuse(**kwargs: Any) -> bytes:
        raise ValueError("the codec refuses this clip")

    with monkeypatch.context() as patch:
        patch.setattr(clip_formats, "audio_encode", refuse)  # fault injection at the codec boundary
        clip = _synthesise(alice)  # asserts the job succeeded
    assert _encodings(clip) == {}

    # The bundle's on-demand encoding is still there for what the worker could not make.
    [entry] = pi.get("/api/tts/phrases/bundle/", {"format": "flac"}).json()["phrases"]
    encoding = ClipEncoding.objects.get(clip=clip, audio_format="flac")
    assert entry["sha256"] == encoding.sha256
    info = soundfile.info(default_storage.path(encoding.audio.name))
    assert (info.format, info.samplerate) == ("FLAC", clip.sample_rate)
    assert settings.MEDIA_ROOT  # files under the test run's media root (emptied after each test)


def test_without_redis_the_device_row_is_still_the_record(alice, settings):
    device, _ = device_create(owner_id=alice.id, name="Pi")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there: every Redis call is refused
    assert device_audio_format_record(device_id=device.id, audio_format="opus") is True
    assert AccessToken.objects.get(id=device.id).audio_format == "opus"
    assert device_audio_format_record(device_id=device.id, audio_format="opus") is False  # unchanged: no write
    assert owner_device_formats(owner_id=alice.id) == ["opus"]
