"""Nothing orphaned, nothing half-written: deleting a user removes their files; a DB
write failing mid-request leaves no file behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.db import OperationalError
from rest_framework.test import APIClient

from tests.audio_samples import wav_bytes
from voice_tts.models import Clip, Job, Voice
from voice_tts.services import clips as clips_service
from voice_tts.services.jobs import job_run
from voice_tts.services.voices import voice_create
from voice_tts.worker import runtime


def files_under(folder: str) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / folder
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_deleting_a_user_removes_their_voices_clips_and_files(alice, bob, django_capture_on_commit_callbacks):
    runtime.engine_start(name="tone", queues=["synthesis"])
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    bobs = voice_create(owner_id=bob.id, data=wav_bytes(4.0))
    job = Job.objects.create(owner=alice, voice=voice, text="hello", language="en")
    job_run(job_id=job.id, task_id="t")
    sidecar = Path(settings.MEDIA_ROOT) / (voice.audio.name + ".analysis.json")
    sidecar.write_text("{}")
    assert len(files_under("voices")) == 3 and len(files_under("clips")) == 1

    with django_capture_on_commit_callbacks(execute=True):
        alice.delete()

    assert not Voice.objects.filter(owner_id=alice.id).exists() and not Clip.objects.exists()
    assert files_under("clips") == []
    assert [p.name for p in files_under("voices")] == [Path(bobs.audio.name).name]


def test_db_failure_while_saving_a_voice_leaves_no_file(alice, monkeypatch):
    def broken_create(*args, **kwargs):
        raise OperationalError("database is locked")  # injected at the ORM boundary

    monkeypatch.setattr(Voice.objects, "create", broken_create)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {alice.token}")
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post("/api/tts/voices/", {"voice_file": SimpleUploadedFile("v.wav", wav_bytes(4.0))},
                           format="multipart")
    assert response.status_code == 500
    assert files_under("voices") == []
    assert Voice.objects.count() == 0


def test_db_failure_while_storing_a_clip_leaves_no_file(alice, monkeypatch):
    runtime.engine_start(name="tone", queues=["synthesis"])
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    job = Job.objects.create(owner=alice, voice=voice, text="hello", language="en")

    def broken(*args, **kwargs):
        raise OperationalError("disk I/O error")  # injected at the ORM boundary

    monkeypatch.setattr(clips_service.Clip.objects, "create", broken)
    with pytest.raises(OperationalError):
        job_run(job_id=job.id, task_id="t")
    assert files_under("clips") == []
