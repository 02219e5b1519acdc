"""?format= and Accept on job audio, clip audio and the phrase bundle: real clips from the real worker, decoded by
libsndfile; each format encoded once per clip, stored beside the WAV, gone with the clip."""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from tests.audio_samples import voice_like, wav_bytes
from tests.test_s3_storage import s3, s3_here  # noqa: F401  (STORAGE_BACKEND=s3 against moto, in this process)
from voice_tts.models import Clip, ClipEncoding
from voice_tts.services.clip_formats import clip_audio_encoded
from voice_tts.services.clips import clip_store, clips_evict_over_quota
from voice_tts.services.voices import voice_create

CONTENT_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "opus": "audio/ogg; codecs=opus",
    "mp3": "audio/mpeg",
}
LIBSNDFILE_TYPES = {"wav": "WAV", "flac": "FLAC", "opus": "OGG", "mp3": "MP3"}
# MP3 pads to whole frames plus the encoder delay; the others come back sample-exact.
SLACK = {"wav": 0.01, "flac": 0.01, "opus": 0.01, "mp3": 0.12}
HOSTILE_FORMATS = [
    "",
    "WAV",
    "Opus",
    "ogg",
    "aac",
    "pcm",
    "wav ",
    " wav",
    "wav\x00",
    "../wav",
    "../../../etc/passwd",
    "wav/../opus",
    "opus;rm -rf /",
    "ｏｐｕｓ",
    "%2e%2e%2f",
    "x" * 10_000,
]
# Sent as they are in the query string: bytes that are not UTF-8, a percent-encoded NUL, a lone surrogate.
HOSTILE_RAW_QUERIES = ["format=%FF", "format=%00", "format=%ED%A0%80", "format", "format=&format="]


def clip_files(owner_id: int) -> dict[str, tuple[int, int]]:
    """Name -> (inode, mtime_ns) of the owner's clip files in MEDIA_ROOT."""
    folder = Path(django_settings.MEDIA_ROOT) / "clips" / str(owner_id)
    if not folder.is_dir():
        return {}
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def decoded_seconds(data: bytes) -> tuple[float, str]:
    info = soundfile.info(io.BytesIO(data))
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    return len(samples) / rate, info.format


def make_clip(http: Any, text: str = "약 드실 시간입니다. 물과 함께 드세요.") -> dict:
    created = http.post("/api/tts/jobs/", json={"text": text, "language": "ko"})
    assert created.status_code in (200, 202), created.text
    body = created.json()
    if created.status_code == 202:
        body = http.wait_job(body["id"])
    assert body["status"] == "succeeded", body
    return body


@pytest.mark.worker
def test_every_format_decodes_is_stored_once_and_reused(worker, alice_http, alice):
    assert alice_http.upload_voice(4.0).status_code == 201
    job = make_clip(alice_http)
    clip = Clip.objects.get(owner=alice, cache_key=job["cache_key"])
    clip_url = f"/api/tts/cache/{clip.cache_key}/audio/"
    assert clip_files(alice.id) == {f"{clip.cache_key}.wav": clip_files(alice.id)[f"{clip.cache_key}.wav"]}

    answers = {}
    for audio_format in CONTENT_TYPES:
        response = alice_http.get(job["audio_url"], params={"format": audio_format})
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == CONTENT_TYPES[audio_format]
        assert "Accept" in response.headers["Vary"]
        extension = "opus" if audio_format == "opus" else audio_format
        assert f'{job["id"]}.{extension}"' in response.headers["Content-Disposition"]
        seconds, container = decoded_seconds(response.content)
        assert container == LIBSNDFILE_TYPES[audio_format]
        assert abs(seconds - job["duration_seconds"]) <= SLACK[audio_format], (audio_format, seconds)
        answers[audio_format] = response

    sizes = {f: len(r.content) for f, r in answers.items()}
    assert sizes["opus"] * 5 < sizes["wav"], sizes  # espeak at 22.05 kHz: ~44 kB/s of WAV, a few kB/s of Opus
    assert sizes["mp3"] * 3 < sizes["wav"], sizes
    assert sizes["flac"] < sizes["wav"], sizes
    etags = {f: r.headers["ETag"] for f, r in answers.items()}
    assert len(set(etags.values())) == 4 and all(e.startswith('"') and e.endswith('"') for e in etags.values())
    assert etags["wav"] == f'"wav-{clip.sha256[:32]}"'

    # Each encoding is one row and one file beside the WAV, named by its bytes, holding exactly what was served.
    encodings = {e.audio_format: e for e in ClipEncoding.objects.filter(clip=clip)}
    assert set(encodings) == {"flac", "opus", "mp3"}
    for audio_format, encoding in encodings.items():
        data = default_storage.open(encoding.audio.name).read()
        assert data == answers[audio_format].content
        assert encoding.sha256 == hashlib.sha256(data).hexdigest() and encoding.size_bytes == len(data)
        assert encoding.source_sha256 == clip.sha256
        assert encoding.audio.name == f"clips/{alice.id}/{clip.cache_key}.{encoding.sha256[:16]}.{audio_format}"
        assert etags[audio_format] == f'"{audio_format}-{encoding.sha256[:32]}"'
    stored = clip_files(alice.id)
    assert len(stored) == 4

    # Asked again (through the other route, the clip's): served from storage, nothing written. Opus bytes differ
    # on every encode (a random Ogg serial), so equal bytes also show it was not made again.
    for audio_format in CONTENT_TYPES:
        again = alice_http.get(clip_url, params={"format": audio_format})
        assert again.status_code == 200 and again.content == answers[audio_format].content
        assert again.headers["ETag"] == etags[audio_format]
    assert clip_files(alice.id) == stored
    assert {e.audio_format: e.id for e in ClipEncoding.objects.filter(clip=clip)} == {
        f: e.id for f, e in encodings.items()
    }


@pytest.mark.worker
def test_accept_negotiation_etags_and_304(worker, alice_http, alice):
    assert alice_http.upload_voice(4.0).status_code == 201
    job = make_clip(alice_http, "Take two tablets with water.")
    url = job["audio_url"]

    def content_type(**headers: str) -> str:
        response = alice_http.get(url, headers=headers)
        assert response.status_code == 200, response.text
        assert "Accept" in response.headers["Vary"]
        return response.headers["Content-Type"]

    assert content_type() == "audio/wav"  # requests sends Accept: */*
    assert content_type(Accept="audio/ogg") == CONTENT_TYPES["opus"]
    assert content_type(Accept="audio/opus") == CONTENT_TYPES["opus"]
    assert content_type(Accept="audio/mpeg") == "audio/mpeg"
    assert content_type(Accept="audio/flac") == "audio/flac"
    assert content_type(Accept="audio/x-wav") == "audio/wav"
    assert content_type(Accept="audio/ogg;q=0.4, audio/mpeg;q=0.9") == "audio/mpeg"
    assert content_type(Accept="audio/aac, audio/ogg;q=0.1") == CONTENT_TYPES["opus"]
    assert content_type(Accept="audio/ogg;q=0, audio/*") == "audio/wav"
    # Not audio at all (a browser's, a JSON client's): the WAV, as before formats existed, never a 406.
    assert content_type(Accept="application/json") == "audio/wav"
    assert content_type(Accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.8") == "audio/wav"
    assert content_type(Accept=";;;,,=q=" + "a/" * 2000) == "audio/wav"
    # ?format= wins over Accept.
    response = alice_http.get(url, params={"format": "wav"}, headers={"Accept": "audio/ogg"})
    assert response.headers["Content-Type"] == "audio/wav"
    response = alice_http.get(url, params={"format": "mp3"}, headers={"Accept": "audio/ogg"})
    assert response.headers["Content-Type"] == "audio/mpeg"

    # Conditional GET: an ETag only matches its own format.
    opus = alice_http.get(url, params={"format": "opus"})
    etag = opus.headers["ETag"]
    unchanged = alice_http.get(url, params={"format": "opus"}, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["ETag"] == etag and "Accept" in unchanged.headers["Vary"]
    assert alice_http.get(url, headers={"If-None-Match": etag, "Accept": "audio/ogg"}).status_code == 304
    other_format = alice_http.get(url, params={"format": "mp3"}, headers={"If-None-Match": etag})
    assert other_format.status_code == 200 and other_format.headers["ETag"] != etag
    wav = alice_http.get(url, headers={"If-None-Match": etag})
    assert wav.status_code == 200 and wav.headers["Content-Type"] == "audio/wav"
    assert alice_http.get(url, headers={"If-None-Match": wav.headers["ETag"]}).status_code == 304
    clip_url = f"/api/tts/cache/{job['cache_key']}/audio/"
    assert alice_http.get(clip_url, params={"format": "opus"}, headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.worker
def test_other_users_audio_is_404_in_every_format_and_hostile_formats_are_400(worker, alice_http, bob_http, alice):
    assert alice_http.upload_voice(4.0).status_code == 201
    assert bob_http.upload_voice(4.0).status_code == 201
    job = make_clip(alice_http, "Evening pills now.")
    urls = [job["audio_url"], f"/api/tts/cache/{job['cache_key']}/audio/"]
    for url in urls:
        for audio_format in CONTENT_TYPES:
            response = bob_http.get(url, params={"format": audio_format})
            assert response.status_code == 404 and response.json()["code"] == "not_found"
            response = bob_http.get(url, headers={"Accept": "audio/ogg"})
            assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert not ClipEncoding.objects.exists()  # Bob's requests made nothing of Alice's clip

    before = clip_files(alice.id)
    for url in urls + ["/api/tts/phrases/bundle/"]:
        for value in HOSTILE_FORMATS:
            response = alice_http.get(url, params={"format": value})
            assert response.status_code == 400, (url, value, response.status_code)
            assert response.headers["Content-Type"] == "application/json"
            body = response.json()
            assert body["code"] == "invalid_format" and "wav, flac, opus, mp3" in body["message"]
            assert len(body["message"]) < 200  # a 10 000-character value is not echoed back
        for query in HOSTILE_RAW_QUERIES:
            response = alice_http.get(f"{url}?{query}")
            assert response.status_code == 400 and response.json()["code"] == "invalid_format", (url, query)
        repeated = alice_http.get(url + "?format=wav&format=opus")
        assert repeated.status_code == 400 and repeated.json()["code"] == "invalid_format"
    for url in urls:
        # Even with an Accept the route serves: the bad ?format= is refused, never ignored.
        assert alice_http.get(url, params={"format": "ogg"}, headers={"Accept": "audio/ogg"}).status_code == 400
    assert clip_files(alice.id) == before and not ClipEncoding.objects.exists()


@pytest.mark.worker
def test_concurrent_first_requests_store_one_complete_file(worker, alice_http, alice):
    assert alice_http.upload_voice(4.0).status_code == 201
    job = make_clip(alice_http, "One file, however many ask at once.")
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: alice_http.get(job["audio_url"], params={"format": "opus"}), range(8)))
    assert all(a.status_code == 200 for a in answers)
    encoding = ClipEncoding.objects.get(clip__cache_key=job["cache_key"], audio_format="opus")
    stored = default_storage.open(encoding.audio.name).read()
    # Losers of the race answer with the winner's file and remove their own: one Opus file, the row's.
    assert {a.content for a in answers} == {stored}
    assert hashlib.sha256(stored).hexdigest() == encoding.sha256
    assert sorted(n for n in clip_files(alice.id) if n.endswith(".opus")) == [Path(encoding.audio.name).name]
    seconds, _ = decoded_seconds(stored)
    assert abs(seconds - job["duration_seconds"]) <= SLACK["opus"]
    partials = Path(django_settings.MEDIA_ROOT) / ".partial"
    assert not partials.exists() or not any(partials.iterdir())


@pytest.mark.worker
def test_encoded_files_go_with_evicted_and_deleted_clips(worker, alice_http, alice, settings):
    created = alice_http.upload_voice(4.0)
    assert created.status_code == 201
    first = make_clip(alice_http, "First reminder.")
    second = make_clip(alice_http, "Second reminder.")
    for job in (first, second):
        for audio_format in ("flac", "opus", "mp3"):
            assert alice_http.get(job["audio_url"], params={"format": audio_format}).status_code == 200
    names = clip_files(alice.id)
    assert len(names) == 8 and sum(n.startswith(first["cache_key"]) for n in names) == 4

    # The quota evicts the least recently used clip: its WAV and its three encodings go.
    settings.CLIP_QUOTA_PER_USER = 1
    keep = Clip.objects.get(owner=alice, cache_key=second["cache_key"])
    assert clips_evict_over_quota(owner_id=alice.id, keep_clip_id=keep.id) == 1
    left = clip_files(alice.id)
    assert sorted(left) == sorted(n for n in names if n.startswith(second["cache_key"]))
    assert ClipEncoding.objects.filter(clip=keep).count() == 3 and ClipEncoding.objects.count() == 3

    # Deleting the voice cascades to its clips and their encodings; every file goes after the commit.
    voice_id = created.json()["id"]
    assert alice_http.delete(f"/api/tts/voices/{voice_id}/").status_code == 204
    assert clip_files(alice.id) == {} and not ClipEncoding.objects.exists()


def _store(voice: Any, samples: np.ndarray, key: str = "e" * 64) -> Clip:
    return clip_store(voice=voice, cache_key=key, text="t", language="en", params={}, engine="tone",
                      model_version="t", samples=samples, sample_rate=24000)


def test_resynthesised_clip_never_serves_an_old_encoding(transactional_db, alice):
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    clip = _store(voice, voice_like(1.0, rate=24000))
    old = clip_audio_encoded(clip=clip, audio_format="opus")
    old_mp3 = clip_audio_encoded(clip=clip, audio_format="mp3")
    assert default_storage.exists(old.name) and default_storage.exists(old_mp3.name)

    # Re-synthesis (a use_cache: false job) rewrites the same WAV name with a new sound: the encodings of the old
    # sound go, rows and files.
    clip = _store(voice, voice_like(2.5, rate=24000, seed=7))
    assert not ClipEncoding.objects.filter(clip=clip).exists()
    assert not default_storage.exists(old.name) and not default_storage.exists(old_mp3.name)
    new = clip_audio_encoded(clip=clip, audio_format="opus")
    assert new.name != old.name
    seconds, _ = decoded_seconds(default_storage.open(new.name).read())
    assert abs(seconds - 2.5) < 0.01

    # The same sound stored again keeps its encodings.
    clip = _store(voice, voice_like(2.5, rate=24000, seed=7))
    assert ClipEncoding.objects.get(clip=clip).audio.name == new.name


def test_stale_encoding_is_replaced_even_if_the_row_was_updated_by_hand(transactional_db, alice):
    # A clip row whose WAV changed without clip_store (an admin, a restore): the encoding's source no longer
    # matches the clip's sha256, so it is made again from the current WAV.
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    clip = _store(voice, voice_like(1.0, rate=24000), key="f" * 64)
    old = clip_audio_encoded(clip=clip, audio_format="flac")
    replacement = io.BytesIO()
    soundfile.write(replacement, voice_like(1.7, rate=24000, seed=3), 24000, format="WAV", subtype="PCM_16")
    default_storage.save(clip.audio.name, ContentFile(replacement.getvalue()))
    Clip.objects.filter(id=clip.id).update(sha256=hashlib.sha256(replacement.getvalue()).hexdigest())
    clip.refresh_from_db()
    new = clip_audio_encoded(clip=clip, audio_format="flac")
    assert new.name != old.name and not default_storage.exists(old.name)
    seconds, _ = decoded_seconds(default_storage.open(new.name).read())
    assert abs(seconds - 1.7) < 0.001
    assert ClipEncoding.objects.filter(clip=clip).count() == 1


def test_missing_wav_is_410_in_every_format(alice_api, alice):
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    name = default_storage.save(f"clips/{alice.id}/{'d' * 64}.wav", ContentFile(wav_bytes(1.0)))
    Clip.objects.create(owner_id=alice.id, voice=voice, cache_key="d" * 64, text="t", language="en", params={},
                        engine="tone", model_version="t", audio=name, duration_seconds=1.0, sample_rate=44100)
    default_storage.delete(name)
    for audio_format in CONTENT_TYPES:
        response = alice_api.get(f"/api/tts/cache/{'d' * 64}/audio/", {"format": audio_format})
        assert response.status_code == 410 and response.json()["code"] == "audio_missing"
    assert not ClipEncoding.objects.exists()


def test_sendfile_modes_serve_encodings_with_their_type(alice_api, alice, settings):
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    clip = _store(voice, voice_like(1.0, rate=24000), key="a" * 64)
    settings.AUDIO_SENDFILE = "x-accel-redirect"
    settings.AUDIO_ACCEL_REDIRECT_PREFIX = "/protected-media/"
    response = alice_api.get(f"/api/tts/cache/{clip.cache_key}/audio/", {"format": "opus"})
    encoding = ClipEncoding.objects.get(clip=clip, audio_format="opus")
    assert response.status_code == 200 and response.content == b""
    assert response["X-Accel-Redirect"] == f"/protected-media/{encoding.audio.name}"
    assert response["Content-Type"] == CONTENT_TYPES["opus"]
    assert response["ETag"] == f'"opus-{encoding.sha256[:32]}"'
    assert f'filename="{clip.cache_key}.opus"' in response["Content-Disposition"]
    settings.AUDIO_SENDFILE = "x-sendfile"
    response = alice_api.get(f"/api/tts/cache/{clip.cache_key}/audio/", HTTP_ACCEPT="audio/mpeg")
    encoding = ClipEncoding.objects.get(clip=clip, audio_format="mp3")
    assert response["X-Sendfile"] == default_storage.path(encoding.audio.name)
    assert response["Content-Type"] == "audio/mpeg"
    assert os.path.isfile(response["X-Sendfile"])


def test_encodings_on_s3_are_single_objects_beside_the_wav_and_go_with_the_clip(
    s3_here: Any, alice: Any, django_capture_on_commit_callbacks: Any  # noqa: F811 (the imported fixture)
) -> None:
    # STORAGE_BACKEND=s3 in this process (moto's S3 server over HTTP): the same service, through default_storage.
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    with django_capture_on_commit_callbacks(execute=True):
        clip = _store(voice, voice_like(1.5, rate=24000), key="b" * 64)
    served = {f: clip_audio_encoded(clip=clip, audio_format=f) for f in ("flac", "opus", "mp3")}
    wav_name = f"clips/{alice.id}/{'b' * 64}.wav"
    assert s3_here.keys(f"clips/{alice.id}/") == {wav_name, *(a.name for a in served.values())}
    assert s3_here.multipart_uploads() == []
    for audio_format, audio in served.items():
        data = s3_here.read(audio.name)
        assert hashlib.sha256(data).hexdigest() == audio.sha256 and len(data) == audio.size_bytes
        seconds, _ = decoded_seconds(data)
        assert abs(seconds - 1.5) <= SLACK[audio_format]
    # Asked again: the stored object, not a new encode (a new Opus encode has other bytes, a random Ogg serial,
    # so it would be a new object under another name).
    keys = s3_here.keys(f"clips/{alice.id}/")
    assert clip_audio_encoded(clip=clip, audio_format="opus") == served["opus"]
    assert s3_here.keys(f"clips/{alice.id}/") == keys
    with django_capture_on_commit_callbacks(execute=True):
        clip.delete()
    assert s3_here.keys(f"clips/{alice.id}/") == set() and not ClipEncoding.objects.exists()
