"""voice_tts/prepared_sql.py: queries compiled once give what the ORM gives, on SQLite and on
PostgreSQL (the suite runs on both); the hand-built INSERT writes the row `save()` would; a cache
hit whose clip vanished is queued instead. No timings here."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models.signals import post_save, pre_save

from tests.audio_samples import wav_bytes
from voice_tts.models import Clip, Job
from voice_tts.prepared_sql import PreparedQuery, model_insert
from voice_tts.presenters import JOB_VALUES_FIELDS
from voice_tts.services import jobs as jobs_service
from voice_tts.services.clips import clip_hit, clip_touch
from voice_tts.services.voices import voice_create
from workers import status


@pytest.fixture
def voice(alice: Any) -> Any:
    return voice_create(owner_id=alice.id, data=wav_bytes(4.0))


def _clip(voice: Any, key: str = "k" * 64) -> Clip:
    return Clip.objects.create(owner_id=voice.owner_id, voice=voice, cache_key=key, text="t", language="en",
                               params={}, engine="tone", model_version="m1", audio="clips/x.wav",
                               duration_seconds=1.5, sample_rate=16000)


@pytest.mark.parametrize("state", ["queued", "succeeded", "failed"])
def test_poll_row_equals_the_orm_values(alice, voice, state):
    fields: dict[str, Any] = {"status": state, "params": {"speed": 1.25, "seed": 3}}
    if state == "succeeded":
        fields |= {"clip": _clip(voice), "cache_hit": True, "processing_time_ms": 7}
    if state == "failed":
        fields |= {"error_code": "engine_failed", "error_message": "boom ✓"}
    job = Job.objects.create(owner_id=alice.id, voice=voice, text="약 드실 시간입니다", **fields)
    expected = Job.objects.filter(id=job.id).values(*JOB_VALUES_FIELDS).get()
    row = jobs_service.job_poll_row(owner_id=alice.id, job_id=job.id)
    assert row == expected
    assert {k: type(v) for k, v in row.items()} == {k: type(v) for k, v in expected.items()}


def test_poll_row_is_the_owners_only(alice, bob, voice):
    job = Job.objects.create(owner_id=alice.id, voice=voice, text="t")
    assert jobs_service.job_poll_row(owner_id=bob.id, job_id=job.id) is None
    assert jobs_service.job_poll_row(owner_id=alice.id, job_id=job.id)["id"] == job.id


@pytest.mark.django_db(transaction=True)  # committed rows: the test closes the connection
def test_compiled_query_survives_a_reconnect(alice, voice):
    clip = _clip(voice)
    assert clip_hit(owner_id=alice.id, cache_key=clip.cache_key).pk == clip.pk
    connection.close()
    found = clip_hit(owner_id=alice.id, cache_key=clip.cache_key)
    assert found.pk == clip.pk and found.duration_seconds == 1.5
    assert clip_hit(owner_id=alice.id, cache_key="0" * 64) is None


def test_an_argument_missing_from_the_query_is_refused(db):
    query = PreparedQuery(lambda owner_id, cache_key: Clip.objects.filter(owner_id=owner_id).values("id"),
                          owner_id=Clip._meta.get_field("owner"), cache_key=Clip._meta.get_field("cache_key"))
    with pytest.raises(ValueError, match="cache_key"):
        query.rows(owner_id=1, cache_key="x")


def test_model_insert_writes_what_save_writes(alice, voice):
    clip = _clip(voice)
    fields = dict(owner_id=alice.id, voice_id=voice.id, text="한 알 드세요", language="ko", params={"speed": 1.5},
                  status=Job.Status.SUCCEEDED, cache_hit=True, cache_key=clip.cache_key, clip=clip,
                  processing_time_ms=0)
    saved = Job.objects.create(**fields)
    inserted = Job(**fields)
    model_insert(inserted)
    assert not inserted._state.adding and inserted._state.db == DEFAULT_DB_ALIAS
    names = [f.attname for f in Job._meta.concrete_fields if f.attname not in ("id", "created_at")]
    rows = {row["id"]: row for row in Job.objects.filter(id__in=[saved.id, inserted.id]).values("id", "created_at",
                                                                                                *names)}
    assert {k: v for k, v in rows[inserted.id].items() if k != "id" and k != "created_at"} == {
        k: v for k, v in rows[saved.id].items() if k != "id" and k != "created_at"}
    assert rows[inserted.id]["created_at"] >= rows[saved.id]["created_at"]  # auto_now_add was applied


def test_model_insert_refuses_database_generated_keys(alice, voice):
    with pytest.raises(ValueError, match="database-generated"):
        model_insert(Clip(owner_id=alice.id, voice=voice, cache_key="x", text="t", language="en", engine="tone",
                          model_version="m", audio="a.wav", duration_seconds=1, sample_rate=16000))


def test_job_has_no_save_receivers_that_model_insert_would_skip():
    assert not pre_save.has_listeners(Job) and not post_save.has_listeners(Job)


def test_clip_touch_counts_and_dates(alice, voice):
    clip = _clip(voice)
    clip_touch(clip=clip)
    clip_touch(clip=clip)
    clip.refresh_from_db()
    assert clip.access_count == 2 and clip.last_accessed_at is not None


@pytest.mark.django_db(transaction=True)  # foreign keys are checked when job_create commits
def test_cache_hit_whose_clip_vanished_is_queued(alice, voice, monkeypatch):
    # The lookup is staged to return a clip deleted just after it (eviction, voice deletion);
    # everything after it runs against the real database and broker.
    monkeypatch.setattr(status, "engine_version_current", lambda *, engine: "m1")
    clip = _clip(voice)
    gone = Clip.from_db(DEFAULT_DB_ALIAS, ["id", "duration_seconds"], [clip.pk, clip.duration_seconds])
    clip.delete()
    monkeypatch.setattr(jobs_service, "clip_hit", lambda *, owner_id, cache_key: gone)
    job = jobs_service.job_create(owner_id=alice.id, text="t", language="en")
    assert job.status == Job.Status.QUEUED and not job.cache_hit
    assert Job.objects.get(id=job.id).enqueue_count == 1  # sent to the queue for a worker
    assert list(Job.objects.values_list("id", flat=True)) == [job.id]  # no half-written cache-hit row
