"""Per-user throttling (429 + Retry-After) and the per-user clip quota (LRU eviction
of clips no reminder phrase pins)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from tests.audio_samples import wav_bytes
from voice_tts.models import Clip, Job
from voice_tts.redis_client import redis_client
from voice_tts.services.clips import clips_evict_over_quota
from voice_tts.services.jobs import job_run
from voice_tts.services.voices import voice_create
from voice_tts.worker import runtime


def _forget_throttle_counters() -> None:
    # Counters of earlier tests (same user ids) must not leak in. Never cache.clear():
    # on Redis that is FLUSHDB, which would wipe the shared server.
    client = redis_client()
    keys = list(client.scan_iter(match=django_settings.REDIS_KEY_PREFIX + "throttle:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def low_rates(settings):
    settings.THROTTLE_RATES = {"jobs": "3/min", "uploads": "2/hour"}
    _forget_throttle_counters()
    yield
    _forget_throttle_counters()


def test_job_creation_is_throttled_per_user(alice_api, bob_api, alice, low_rates):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    codes = [alice_api.post("/api/tts/jobs/", {"text": f"t{n}"}, format="json").status_code for n in range(3)]
    assert 429 not in codes
    limited = alice_api.post("/api/tts/jobs/", {"text": "one too many"}, format="json")
    assert limited.status_code == 429
    assert limited.json()["code"] == "throttled"
    assert 0 < int(limited["Retry-After"]) <= 60
    # Bob has his own budget.
    assert bob_api.post("/api/tts/jobs/", {"text": "hi"}, format="json").status_code != 429


def test_uploads_are_throttled(alice_api, low_rates):
    from django.core.files.uploadedfile import SimpleUploadedFile

    def upload():
        return alice_api.post("/api/tts/voices/", {"voice_file": SimpleUploadedFile("v.wav", wav_bytes(4.0))},
                              format="multipart")

    assert [upload().status_code for _ in range(2)] == [201, 201]
    assert upload().status_code == 429
    assert alice_api.get("/api/tts/voices/").status_code == 200  # listing is not limited


@pytest.fixture
def tone_engine():
    runtime.engine_start(name="tone", queues=["synthesis"])
    return runtime.engine_get()


def test_quota_evicts_least_recently_used_unpinned_clips(alice, tone_engine, settings,
                                                         django_capture_on_commit_callbacks):
    settings.CLIP_QUOTA_PER_USER = 3
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))

    def make(text: str) -> Clip:
        job = Job.objects.create(owner=alice, voice=voice, text=text, language="en")
        with django_capture_on_commit_callbacks(execute=True):
            job_run(job_id=job.id, task_id=f"task-{text}")
        return Job.objects.get(id=job.id).clip

    pinned = make("morning pills")
    Clip.objects.filter(id=pinned.id).update(pinned=True, created_at=timezone.now() - timedelta(days=9))
    old = make("old phrase")
    Clip.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(days=5))
    replayed = make("replayed phrase")
    Clip.objects.filter(id=replayed.id).update(created_at=timezone.now() - timedelta(days=7),
                                               last_accessed_at=timezone.now())
    old_file = Path(django_settings.MEDIA_ROOT) / old.audio.name
    assert old_file.exists()

    with django_capture_on_commit_callbacks(execute=True):
        make("new phrase")  # 4 clips, quota 3: the least recently used unpinned one goes

    remaining = set(Clip.objects.filter(owner=alice).values_list("text", flat=True))
    # "replayed phrase" is older than "old phrase" but was played just now; the pinned
    # clip is the oldest of all but never goes.
    assert remaining == {"morning pills", "replayed phrase", "new phrase"}
    assert not old_file.exists()


def test_quota_never_evicts_pinned_clips(alice, tone_engine, settings):
    settings.CLIP_QUOTA_PER_USER = 1
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    for text in ("a", "b"):
        job = Job.objects.create(owner=alice, voice=voice, text=text, language="en")
        job_run(job_id=job.id, task_id=f"t-{text}")
        Clip.objects.filter(owner=alice).update(pinned=True)
    # Over quota, but every clip is pinned (or just made): nothing goes.
    assert Clip.objects.filter(owner=alice).count() == 2
    assert clips_evict_over_quota(owner_id=alice.id) == 0
