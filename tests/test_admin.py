"""The Django admin lists voices, jobs and clips and plays their audio to staff only."""

import datetime as dt

import pytest
from django.contrib.auth.models import User

from tests.audio_samples import wav_bytes
from voice_tts.models import CareAlert, Dose
from voice_tts.services.phrases import phrase_create
from voice_tts.services.voices import voice_create


@pytest.fixture
def staff_client(client, db):
    User.objects.create_superuser("admin", "admin@example.com", "admin-pass-1234")
    client.login(username="admin", password="admin-pass-1234")
    return client


def test_voice_change_page_has_a_player_and_the_audio_is_served(staff_client, alice):
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    page = staff_client.get(f"/admin/voice_tts/voice/{voice.id}/change/")
    assert page.status_code == 200
    audio_url = f"/admin/voice_tts/voice/{voice.id}/audio/"
    assert f'<audio controls preload="none" src="{audio_url}">' in page.content.decode()
    audio = staff_client.get(audio_url)
    assert audio.status_code == 200 and audio["Content-Type"] == "audio/wav"
    assert b"".join(audio.streaming_content)[:4] == b"RIFF"


def test_admin_lists_load(staff_client):
    for model in ("voice", "job", "clip", "webhookdelivery", "reminderphrase", "phraseplay"):
        assert staff_client.get(f"/admin/voice_tts/{model}/").status_code == 200


def test_non_staff_cannot_reach_admin_audio(client, alice):
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    client.login(username="alice", password="alice-pass-1234")
    response = client.get(f"/admin/voice_tts/voice/{voice.id}/audio/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_phrase_admin_judges_days_and_times_like_the_api(staff_client, alice):
    from voice_tts.models import PhrasePlay, ReminderPhrase

    form = {"owner": alice.id, "text": "약 드세요", "language": "ko", "times": '["20:00", "08:00"]', "days": "[9]",
            "is_active": "on"}
    refused = staff_client.post("/admin/voice_tts/reminderphrase/add/", form)
    assert refused.status_code == 200 and "is not an ISO weekday" in refused.content.decode()
    assert not ReminderPhrase.objects.exists()
    saved = staff_client.post("/admin/voice_tts/reminderphrase/add/", {**form, "days": "[7, 6]"})
    assert saved.status_code == 302
    phrase = ReminderPhrase.objects.get()
    assert (phrase.times, phrase.days) == (["08:00", "20:00"], [6, 7])
    PhrasePlay.objects.create(owner=alice, phrase=phrase, key="pi:1", played_at="2026-12-01T08:00:00+09:00",
                              outcome="played", source="cache")
    listing = staff_client.get("/admin/voice_tts/phraseplay/")
    assert listing.status_code == 200 and "약 드세요" in listing.content.decode()
    assert staff_client.get("/admin/voice_tts/phraseplay/add/").status_code == 403  # reports are records


def test_doses_and_alerts_are_listed_filtered_and_read_only(staff_client, alice):
    phrase = phrase_create(owner_id=alice.id, text="아침 약", times=["08:00"])
    now = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    dose = Dose.objects.create(owner=alice, phrase=phrase, text=phrase.text, local_date=now.date(), local_time="08:00",
                               timezone="Asia/Seoul", scheduled_for=now, state="missed")
    alert = CareAlert.objects.create(owner=alice, kind="dose.missed", channel="email", subject_key=f"dose:{dose.id}",
                                     dose=dose, not_before=now, recipient="daughter@example.org", status="sent")
    missed = staff_client.get("/admin/voice_tts/dose/?state__exact=missed").content.decode()
    assert "아침 약" in missed
    assert "아침 약" not in staff_client.get("/admin/voice_tts/dose/?state__exact=confirmed").content.decode()
    assert "daughter@example.org" in staff_client.get("/admin/voice_tts/carealert/?status__exact=sent").content.decode()
    assert staff_client.get("/admin/voice_tts/dose/add/").status_code == 403
    assert staff_client.post(f"/admin/voice_tts/carealert/{alert.id}/delete/", {"post": "yes"}).status_code == 403
    # The change page is a view page: no save button, the row unchanged by a post.
    staff_client.post(f"/admin/voice_tts/dose/{dose.id}/change/", {"state": "confirmed"})
    dose.refresh_from_db()
    assert dose.state == "missed"
