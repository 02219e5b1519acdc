"""The caregiver's pages through Django's test client: sign-in, CSRF, privacy between two users,
refusals in Korean, English through Accept-Language, the login throttle, and the static manifest.

The browser flow (recording, preview, pre-generation) is tests/test_web_browser.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.signals import user_login_failed
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from tests.audio_samples import silence_bytes, wav_bytes
from tests.conftest import api_client, redis_keys_delete
from voice_tts.models import AccessToken, Clip, Job, ReminderPhrase, Voice
from voice_tts.services.phrases import phrase_create
from voice_tts.services.tokens import device_create
from voice_tts.services.voices import voice_create

PAGES = ["/voice/", "/voice/enrol/", "/voice/reminders/", "/voice/device/"]


def signed_in(user: Any, **headers: Any) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client


def upload(client: Client, data: bytes, name: str = "sample.wav", transcript: str = "") -> Any:
    return client.post("/voice/enrol/upload/", {"voice_file": ContentFile(data, name=name), "transcript": transcript})


@pytest.fixture
def bobs_things(bob: Any) -> dict[str, Any]:
    """Bob's voice, reminder, job, clip (with its file) and device."""
    voice = voice_create(owner_id=bob.id, data=wav_bytes(4.0), transcript="bob")
    phrase = phrase_create(owner_id=bob.id, text="밥 드세요", times=["08:00"])
    name = default_storage.save(f"clips/{bob.id}/bob.wav", ContentFile(wav_bytes(1.0)))
    clip = Clip.objects.create(owner=bob, voice=voice, cache_key="b" * 64, text=phrase.text, language="ko",
                               engine="espeak", model_version="x", audio=name, duration_seconds=1.0,
                               sample_rate=44100)
    job = Job.objects.create(owner=bob, voice=voice, text=phrase.text, status=Job.Status.SUCCEEDED, clip=clip)
    device, _ = device_create(owner_id=bob.id, name="bob's Pi")
    return {"voice": voice, "phrase": phrase, "clip": clip, "job": job, "device": device}


def test_signed_out_pages_redirect_to_the_login(db: Any, bob: Any, bobs_things: dict[str, Any]) -> None:
    client = Client()
    things = bobs_things
    urls = PAGES + [
        f"/voice/voices/{things['voice'].id}/audio/", f"/voice/jobs/{things['job'].id}/",
        f"/voice/jobs/{things['job'].id}/audio/", f"/voice/clips/{things['clip'].cache_key}/audio/",
        f"/voice/reminders/{things['phrase'].id}/edit/", "/voice/reminders/states/",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"/voice/login/?next={url}", url
    for url in ["/voice/enrol/record/", "/voice/preview/", f"/voice/reminders/{things['phrase'].id}/delete/"]:
        assert client.post(url)["Location"].startswith("/voice/login/"), url
    assert ReminderPhrase.objects.filter(id=things["phrase"].id).exists()


def test_login_page_is_korean_and_signs_in(db: Any, alice: Any) -> None:
    client = Client()
    page = client.get("/voice/login/")
    assert page.status_code == 200 and page["Content-Language"] == "ko"
    html = page.content.decode()
    assert '<html lang="ko">' in html and 'type="submit" class="primary">로그인</button>' in html
    refused = client.post("/voice/login/", {"username": "alice", "password": "wrong"})
    assert refused.status_code == 200 and "아이디나 비밀번호가 맞지 않습니다" in refused.content.decode()
    signed = client.post("/voice/login/", {"username": "alice", "password": "alice-pass-1234"})
    assert signed.status_code == 302 and signed["Location"] == "/voice/"
    assert client.get("/voice/").status_code == 200
    assert client.post("/voice/logout/").status_code == 302
    assert client.get("/voice/").status_code == 302


@pytest.fixture
def low_login_limits(settings: Any) -> Iterator[None]:
    settings.LOGIN_FAILURES_PER_USER_IP = 3
    settings.LOGIN_FAILURES_PER_IP = 6
    settings.LOGIN_LOCKOUT_SECONDS = 600
    redis_keys_delete("login:*")
    yield
    redis_keys_delete("login:*")


def test_the_page_login_is_throttled_like_the_api(db: Any, alice: Any, bob: Any, low_login_limits: None) -> None:
    client = Client()
    for _ in range(3):
        assert client.post("/voice/login/", {"username": "alice", "password": "guess"}).status_code == 200
    # Locked: refused before the password is checked, the right one too, in words, with Retry-After.
    locked = client.post("/voice/login/", {"username": "alice", "password": "alice-pass-1234"})
    assert locked.status_code == 429 and 0 < int(locked["Retry-After"]) <= 600
    assert "로그인 실패가 너무 많습니다" in locked.content.decode()
    assert client.get("/voice/").status_code == 302  # not signed in
    # The password is not even checked while locked (no oracle, no hashing cost).
    checked: list[Any] = []

    def failed(sender: Any, **kwargs: Any) -> None:
        checked.append(kwargs)

    user_login_failed.connect(failed)
    try:
        assert client.post("/voice/login/", {"username": "alice", "password": "guess"}).status_code == 429
    finally:
        user_login_failed.disconnect(failed)
    assert checked == []
    # The API login counts the same failures: alice is locked there too, from this address.
    api = client.post("/api/auth/login/", {"username": "alice", "password": "alice-pass-1234"},
                      content_type="application/json")
    assert api.status_code == 429
    # Another user from the same address is not locked by alice's failures.
    assert client.post("/voice/login/", {"username": "bob", "password": "bob-pass-1234"}).status_code == 302


def test_a_post_without_csrf_token_is_refused(db: Any, alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    for url, data in [
        ("/voice/reminders/", {"text": "약 드세요", "times": "08:00"}),
        ("/voice/enrol/record/", {"voice_file": ContentFile(wav_bytes(4.0), name="a.wav")}),
        ("/voice/preview/", {}),
        ("/voice/device/", {"name": "Pi"}),
    ]:
        assert client.post(url, data).status_code == 403, url
    assert not ReminderPhrase.objects.exists() and not Voice.objects.exists()
    assert not AccessToken.objects.filter(owner=alice).exclude(device_name="").exists()
    # With the form's token it goes through.
    page = client.get("/voice/reminders/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    added = client.post("/voice/reminders/", {"text": "약 드세요", "times": "08:00", "csrfmiddlewaretoken": token})
    assert added.status_code == 302 and ReminderPhrase.objects.filter(owner=alice).count() == 1


def test_another_users_things_are_404_through_the_pages(db: Any, alice: Any, bob: Any,
                                                       bobs_things: dict[str, Any]) -> None:
    things = bobs_things
    reads = [
        f"/voice/voices/{things['voice'].id}/audio/",
        f"/voice/jobs/{things['job'].id}/",
        f"/voice/jobs/{things['job'].id}/audio/",
        f"/voice/clips/{things['clip'].cache_key}/audio/",
        f"/voice/reminders/{things['phrase'].id}/edit/",
        f"/voice/reminders/{things['phrase'].id}/delete/",
    ]
    writes = [
        (f"/voice/reminders/{things['phrase'].id}/edit/", {"text": "바뀜", "times": "09:00"}),
        (f"/voice/reminders/{things['phrase'].id}/pause/", {"active": "0"}),
        (f"/voice/reminders/{things['phrase'].id}/delete/", {}),
        (f"/voice/device/{things['device'].id}/revoke/", {}),
    ]
    owner = signed_in(bob)
    for url in reads:
        assert owner.get(url).status_code == 200, url  # the URLs work for their owner
    as_alice = signed_in(alice)
    for url in reads:
        assert as_alice.get(url).status_code == 404, url
    for url, data in writes:
        assert as_alice.post(url, data).status_code == 404, url
    phrase = ReminderPhrase.objects.get(id=things["phrase"].id)
    assert phrase.text == "밥 드세요" and phrase.is_active
    assert AccessToken.objects.filter(id=things["device"].id).exists()
    # Nothing of bob's shows on alice's pages.
    for url in PAGES:
        html = as_alice.get(url).content.decode()
        assert "밥 드세요" not in html and "bob&#x27;s Pi" not in html and str(things["voice"].id) not in html
    states = as_alice.get("/voice/reminders/states/").json()
    assert states == {"phrases": []}


def test_the_upload_form_enrols_a_voice_and_refuses_in_korean(db: Any, alice: Any) -> None:
    client = signed_in(alice)
    refusals = {
        "녹음이 너무 짧습니다": wav_bytes(1.0),
        "녹음이 너무 깁니다": wav_bytes(14.0),
        "아무 소리도 들리지 않습니다": silence_bytes(5.0),
        "읽을 수 있는 녹음 파일이 아닙니다": b"this is not audio at all, just text " * 20,
    }
    for words, data in refusals.items():
        response = upload(client, data)
        assert response.status_code in (400, 415), words
        assert words in response.content.decode(), words
    assert not Voice.objects.filter(owner=alice).exists()
    saved = upload(client, wav_bytes(4.5), transcript="안녕하세요")
    assert saved.status_code == 302 and saved["Location"] == "/voice/"
    voice = Voice.objects.get(owner=alice, is_active=True)
    assert voice.transcript == "안녕하세요" and 4.0 < voice.duration_seconds < 5.0
    home = client.get("/voice/").content.decode()
    assert "목소리를 저장했습니다" in home and f"{voice.duration_seconds:.1f}초" in home
    audio = client.get(f"/voice/voices/{voice.id}/audio/")
    assert audio.status_code == 200 and audio["Content-Type"] == "audio/wav"
    assert b"".join(audio.streaming_content)[:4] == b"RIFF"


@pytest.fixture
def two_uploads_a_minute(settings: Any) -> Iterator[None]:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "uploads": "2/min"}
    redis_keys_delete("throttle:*")
    yield
    redis_keys_delete("throttle:*")


def test_uploads_through_the_pages_count_against_the_api_limit(db: Any, alice: Any, bob: Any,
                                                              two_uploads_a_minute: None) -> None:
    client = signed_in(alice)
    assert upload(client, wav_bytes(4.0)).status_code == 302
    assert client.post("/voice/enrol/record/", {"voice_file": ContentFile(wav_bytes(4.0), name="r.wav")}
                       ).status_code == 201
    refused = client.post("/voice/enrol/record/", {"voice_file": ContentFile(wav_bytes(4.0), name="r.wav")})
    assert refused.status_code == 429 and refused.json()["code"] == "throttled"
    assert refused.json()["message"].startswith("짧은 시간에 너무 여러 번 시도했습니다")
    form = upload(client, wav_bytes(4.0))
    assert form.status_code == 429 and "짧은 시간에 너무 여러 번" in form.content.decode()
    api = api_client(alice).post("/api/tts/voices/", {"voice_file": ContentFile(wav_bytes(4.0), name="a.wav")})
    assert api.status_code == 429  # one counter per user, whichever door
    assert Voice.objects.filter(owner=alice).count() == 2
    assert upload(signed_in(bob), wav_bytes(4.0)).status_code == 302  # bob has his own


def test_the_recording_endpoint_answers_json_in_korean(db: Any, alice: Any) -> None:
    client = signed_in(alice)
    short = client.post("/voice/enrol/record/", {"voice_file": ContentFile(wav_bytes(1.0), name="r.wav")})
    assert short.status_code == 400
    assert short.json()["code"] == "clip_too_short" and short.json()["message"].startswith("녹음이 너무 짧습니다")
    missing = client.post("/voice/enrol/record/", {})
    assert missing.status_code == 400 and missing.json()["code"] == "missing_file"
    saved = client.post("/voice/enrol/record/", {"voice_file": ContentFile(wav_bytes(5.0, rate=48000), name="r.wav")})
    assert saved.status_code == 201
    voice = Voice.objects.get(owner=alice)
    assert saved.json()["voice"]["id"] == str(voice.id)
    assert voice.transcript.startswith("저는 제 목소리로")  # the reading script, with its consent sentence


def test_reminders_add_edit_pause_delete(db: Any, alice: Any) -> None:
    client = signed_in(alice)
    empty_time = client.post("/voice/reminders/", {"text": "약 드세요", "times": ["", ""]})
    assert empty_time.status_code == 400 and "시간을 하나 이상 넣어 주세요" in empty_time.content.decode()
    added = client.post("/voice/reminders/", {"text": "  아침  약 드세요 ", "times": ["08:00", "", "21:30"],
                                             "days": ["1", "3"]})
    assert added.status_code == 302
    phrase = ReminderPhrase.objects.get(owner=alice)
    assert (phrase.text, phrase.times, phrase.days, phrase.is_active) == ("아침 약 드세요", ["08:00", "21:30"],
                                                                           [1, 3], True)
    duplicate = client.post("/voice/reminders/", {"text": "아침 약 드세요", "times": "09:00"})
    assert duplicate.status_code == 409 and "같은 말의 알림이 이미 있습니다" in duplicate.content.decode()
    page = client.get("/voice/reminders/").content.decode()
    assert "08:00, 21:30" in page and "월 수" in page and "목소리 필요" in page  # no voice yet
    edit = client.get(f"/voice/reminders/{phrase.id}/edit/").content.decode()
    assert 'value="08:00"' in edit and 'value="21:30"' in edit and 'value="3" checked' in edit
    changed = client.post(f"/voice/reminders/{phrase.id}/edit/", {"text": "저녁 약 드세요", "times": "19:00"})
    assert changed.status_code == 302
    phrase.refresh_from_db()
    assert (phrase.text, phrase.times, phrase.days) == ("저녁 약 드세요", ["19:00"], [])
    assert client.post(f"/voice/reminders/{phrase.id}/pause/", {"active": "0"}).status_code == 302
    phrase.refresh_from_db()
    assert not phrase.is_active
    assert "일시 중지" in client.get("/voice/reminders/").content.decode()
    assert client.post(f"/voice/reminders/{phrase.id}/pause/", {"active": "1"}).status_code == 302
    phrase.refresh_from_db()
    assert phrase.is_active
    confirm = client.get(f"/voice/reminders/{phrase.id}/delete/")
    assert confirm.status_code == 200 and ReminderPhrase.objects.filter(id=phrase.id).exists()
    assert client.post(f"/voice/reminders/{phrase.id}/delete/").status_code == 302
    assert not ReminderPhrase.objects.filter(id=phrase.id).exists()


def test_a_failed_clip_says_failed(db: Any, alice: Any) -> None:
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    phrase = phrase_create(owner_id=alice.id, text="약 드세요", times=["08:00"])
    client = signed_in(alice)

    def state() -> str:
        return client.get("/voice/reminders/states/").json()["phrases"][0]["words"]

    assert state() == "만드는 중"
    Job.objects.create(owner=alice, voice=voice, text=phrase.text, status=Job.Status.FAILED, error_code="x",
                       error_message="engine broke")
    assert state() == "실패"
    Job.objects.create(owner=alice, voice=voice, text=phrase.text, status=Job.Status.QUEUED)
    assert state() == "만드는 중"  # a newer try is on its way


@pytest.fixture
def lan_host(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["testserver", "voice.example.lan"]


def test_the_pi_page_makes_and_revokes_a_device_token(db: Any, alice: Any, lan_host: None) -> None:
    client = signed_in(alice)
    nameless = client.post("/voice/device/", {"name": "   "})
    assert nameless.status_code == 400 and "Pi의 이름을 넣어 주세요" in nameless.content.decode()
    made = client.post("/voice/device/", {"name": "거실 Pi"}, HTTP_HOST="voice.example.lan")
    assert made.status_code == 200 and made["Cache-Control"] == "no-store"
    html = made.content.decode()
    config = re.search(r'<pre id="pi-config" tabindex="0">(.*?)</pre>', html, re.S).group(1)
    assert config.startswith("[carepill]\nserver_url = http://voice.example.lan\ntoken = cpv_")
    device = AccessToken.objects.get(owner=alice, device_name="거실 Pi")
    assert device.prefix in config  # the key shown is this device's
    listed = client.get("/voice/device/").content.decode()
    assert "거실 Pi" in listed and "cpv_" not in listed  # shown once only
    assert client.post(f"/voice/device/{device.id}/revoke/").status_code == 302
    assert not AccessToken.objects.filter(id=device.id).exists()


def test_labels_in_korean_and_in_english(db: Any, alice: Any) -> None:
    labels = {  # the table
        "/voice/login/": [("로그인", "Log in")],
        "/voice/enrol/": [("녹음 시작", "Start recording"), ("녹음 끝", "Stop recording"), ("저장", "Save"),
                          ("미리 듣기", "Preview")],
        "/voice/reminders/": [("알림 추가", "Add reminder")],
    }
    for url, pairs in labels.items():
        if url == "/voice/login/":  # shown to the signed-out
            korean, english = Client(), Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
        else:
            korean, english = signed_in(alice), signed_in(alice, HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
        ko_html = korean.get(url).content.decode()
        en_response = english.get(url)
        en_html = en_response.content.decode()
        assert en_response["Content-Language"] == "en" and '<html lang="en">' in en_html
        for ko, en in pairs:
            assert re.search(rf">\s*{ko}\s*</(button|h1|h2)>", ko_html), (url, ko)
            assert re.search(rf">\s*{en}\s*</(button|h1|h2)>", en_html), (url, en)
            assert ko not in en_html, (url, ko)
    # The English recorder's words too (rendered into the page for its script).
    english = signed_in(alice, HTTP_ACCEPT_LANGUAGE="en")
    assert "Recording. Please read the words aloud." in english.get("/voice/enrol/").content.decode()


def test_the_api_keeps_english_whatever_the_browser_asks(db: Any) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="ko-KR,ko;q=0.9")
    response = client.get("/api/tts/voices/")
    assert response.status_code == 401
    assert response.json()["message"] == "Authentication credentials were not provided."


def test_static_files_come_from_the_manifest_through_whitenoise(db: Any, alice: Any) -> None:
    html = signed_in(alice).get("/voice/enrol/").content.decode()
    urls = re.findall(r'(?:href|src|data-worklet)="(/static/web/[^"]+)"', html)
    names = {url.rsplit("/", 1)[1] for url in urls}
    assert {n.split(".")[0] for n in names} == {"app", "enrol", "recorder-worklet"}
    assert all(re.fullmatch(r"[\w-]+\.[0-9a-f]{12}\.(css|js)", name) for name in names), names  # hashed
    anonymous = Client()
    for url in urls:
        response = anonymous.get(url, HTTP_ACCEPT_ENCODING="gzip")
        assert response.status_code == 200, url
        assert response["Cache-Control"].startswith("max-age=315360000"), url  # immutable: hashed name
        assert response["Content-Encoding"] == "gzip", url
        body = b"".join(response.streaming_content)
        assert body[:2] == b"\x1f\x8b"
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)  # nothing from a CDN or another host


def test_the_pages_carry_their_accessibility_basics(db: Any, alice: Any) -> None:
    client = signed_in(alice)
    for url in PAGES:
        html = client.get(url).content.decode()
        assert 'role="status" aria-live="polite"' in html, url
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html, url
    css_url = re.search(r'href="(/static/web/app\.[0-9a-f]+\.css)"', client.get("/voice/").content.decode()).group(1)
    css = b"".join(Client().get(css_url).streaming_content).decode()
    assert "html { font-size: 125%; }" in css  # 20 px at the browser's default, in rem below
    assert "user-scalable" not in client.get("/voice/").content.decode()  # zoom is never blocked


def test_an_unknown_job_or_voice_is_404(db: Any, alice: Any) -> None:
    client = signed_in(alice)
    assert client.get(f"/voice/jobs/{uuid.uuid4()}/").status_code == 404
    assert client.get(f"/voice/voices/{uuid.uuid4()}/audio/").status_code == 404
    assert client.get("/voice/clips/nope/audio/").status_code == 404
    assert client.post("/voice/preview/").json()["message"] == "먼저 목소리를 녹음해 주세요."



def test_the_enrol_page_reads_its_own_voices_tuning_state(db: Any, alice: Any, bob: Any) -> None:
    """enrol/adaptation/ (the enrol page's poll) answers the signed-in user's own voice only, in words."""
    assert signed_in(alice).get("/voice/enrol/adaptation/").status_code == 404  # no voice yet
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0), transcript="alice")
    Voice.objects.filter(id=voice.id).update(adaptation_state="running", adaptation_progress=0.4)
    bobs = voice_create(owner_id=bob.id, data=wav_bytes(4.0), transcript="bob")
    Voice.objects.filter(id=bobs.id).update(adaptation_state="done", adaptation_progress=1.0)

    mine = signed_in(alice, HTTP_ACCEPT_LANGUAGE="ko").get("/voice/enrol/adaptation/")
    assert mine.status_code == 200
    assert mine.json() == {"voice": str(voice.id), "state": "running", "progress": 0.4,
                           "words": "목소리를 맞추는 중… 40%", "outcome": None, "preview": None}
    page = signed_in(alice, HTTP_ACCEPT_LANGUAGE="ko").get("/voice/enrol/").content.decode()
    assert 'data-url="/voice/enrol/adaptation/"' in page and "목소리를 맞추는 중… 40%" in page
    theirs = signed_in(bob, HTTP_ACCEPT_LANGUAGE="ko").get("/voice/enrol/adaptation/").json()
    assert theirs["voice"] == str(bobs.id) and theirs["state"] == "done"
    assert theirs["preview"] is None  # done, but no preview was made: no players
    signed_out = Client().get("/voice/enrol/adaptation/")
    assert signed_out.status_code == 302 and "/voice/login/" in signed_out["Location"]
    assert signed_in(alice).post("/voice/enrol/adaptation/").status_code in (403, 405)
