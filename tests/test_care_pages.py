"""The reminder loop on the caregiver's pages (Django's test client): today's doses in words and the
Pi's contact on the home page, the week view, alert settings (CSRF, refusals in words), a real test
alert through the worker to the SMTP server, and nothing of one household on another's pages."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from voice_tts.models import AccessToken, CareAlert, CareSettings, Dose, ReminderPhrase
from voice_tts.services.doses import dose_confirm
from voice_tts.services.phrases import phrase_create
from voice_tts.services.plays import phrase_play_record
from voice_tts.services.tokens import device_create

SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")


def signed_in(user: Any) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="ko")
    client.force_login(user)
    return client


def text_of(response: Any) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def doses_today(user: Any) -> dict[str, Dose]:
    """Four doses today, one in each state that has words: confirmed, unconfirmed, missed, upcoming."""
    today = timezone.now().astimezone(SEOUL).date()
    phrase = phrase_create(owner_id=user.id, text="아침 약 드실 시간입니다", times=["08:00", "12:00", "18:00", "23:59"])
    ReminderPhrase.objects.filter(id=phrase.id).update(created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    made = {}
    for hhmm in ("08:00", "12:00", "18:00", "23:59"):
        due = dt.datetime.combine(today, dt.time.fromisoformat(hhmm), SEOUL)
        # The schedule may have made it already (after the phrase's commit, in a transactional test).
        made[hhmm], _ = Dose.objects.update_or_create(
            phrase=phrase, local_date=today, local_time=hhmm,
            defaults={"owner": user, "text": phrase.text, "timezone": "Asia/Seoul", "scheduled_for": due})
    at = lambda hhmm: dt.datetime.combine(today, dt.time.fromisoformat(hhmm), SEOUL)  # noqa: E731
    phrase_play_record(owner_id=user.id, phrase_id=phrase.id, key="k1", played_at=at("08:00"), outcome="played",
                       source="cache", scheduled_date=today, scheduled_time="08:00")
    dose_confirm(owner_id=user.id, phrase_id=phrase.id, local_date=today, local_time="08:00",
                 confirmed_at=at("08:02"), key="k1:confirm")
    for n, minute in enumerate(("12:00", "12:05", "12:10")):
        phrase_play_record(owner_id=user.id, phrase_id=phrase.id, key=f"k2-{n}", played_at=at(minute),
                           outcome="played", source="cache", scheduled_date=today, scheduled_time="12:00")
    Dose.objects.filter(id=made["12:00"].id).update(state="unconfirmed")
    Dose.objects.filter(id=made["18:00"].id).update(state="missed")
    return made


def test_home_shows_today_s_doses_in_words_and_the_pi_s_contact(db, alice, bob):
    doses_today(alice)
    device, _ = device_create(owner_id=alice.id, name="거실 Pi")
    AccessToken.objects.filter(id=device.id).update(last_seen_at=timezone.now() - dt.timedelta(minutes=5))
    page = text_of(signed_in(alice).get("/voice/"))
    assert "08:00 재생됨 · 08:02 확인함" in page
    assert "확인 안 됨 (3번 재생)" in page
    assert "놓침: 재생되지 않았습니다" in page
    assert "예정" in page
    assert "Pi 연결: 5분 전" in page
    # Bob has no Pi and no doses: nothing of Alice's.
    bobs = text_of(signed_in(bob).get("/voice/"))
    assert "아침 약 드실 시간입니다" not in bobs and "Pi 연결: 아직 연결 안 됨" in bobs


def test_a_silent_pi_and_a_zone_mismatch_are_said_in_words(db, alice):
    device, _ = device_create(owner_id=alice.id, name="거실 Pi")
    AccessToken.objects.filter(id=device.id).update(last_seen_at=timezone.now() - dt.timedelta(hours=3))
    CareSettings.objects.create(owner=alice, timezone="Europe/London", device_timezone="Asia/Seoul")
    page = text_of(signed_in(alice).get("/voice/"))
    assert "Pi가 응답하지 않습니다: 마지막 연결은 3시간 전입니다." in page
    assert "Pi의 시간대는 Asia/Seoul인데 집의 시간대는 Europe/London(으)로 설정되어 있습니다." in page


def test_week_view_marks_and_rates_without_colour(db, alice, bob):
    doses_today(alice)
    response = signed_in(alice).get("/voice/week/")
    assert response.status_code == 200
    page = text_of(response)
    assert "아침 약 드실 시간입니다" in page
    # Three closed doses (confirmed, unconfirmed, missed): one confirmed.
    assert "33% (3번 중 1번)" in page
    assert "✓ 확인함" in page and "△ 확인 안 됨" in page and "✗ 놓침" in page
    assert "08:00 확인함, 12:00 확인 안 됨, 18:00 놓침, 23:59 예정" in page
    assert "아침 약" not in text_of(signed_in(bob).get("/voice/week/"))


def test_alert_settings_save_refuse_in_words_and_need_csrf(db, alice, bob):
    client = signed_in(alice)
    saved = client.post("/voice/alerts/", {"alert_email": "daughter@example.org", "alert_language": "ko",
                                           "timezone": "Asia/Seoul", "quiet_start": "22:00", "quiet_end": "07:00"})
    assert saved.status_code == 302
    care = CareSettings.objects.get(owner=alice)
    assert (care.alert_email, care.timezone, care.quiet_start, care.quiet_end) == (
        "daughter@example.org", "Asia/Seoul", dt.time(22), dt.time(7))
    wrong = client.post("/voice/alerts/", {"alert_language": "ko", "timezone": "Mars/Olympus"})
    assert wrong.status_code == 400 and "목록에서 시간대를 골라 주세요" in text_of(wrong)
    half = client.post("/voice/alerts/", {"alert_language": "ko", "quiet_start": "22:00"})
    assert half.status_code == 400 and "쉬는 시간은 시작과 끝을 모두 정해 주세요" in text_of(half)
    private = client.post("/voice/alerts/", {"alert_language": "ko", "alert_webhook_url": "http://10.0.0.5/hook"})
    assert private.status_code == 400 and "내부 네트워크" in text_of(private)
    assert CareSettings.objects.get(owner=alice).timezone == "Asia/Seoul"  # nothing half-written
    # CSRF: a cross-site form post is refused and changes nothing.
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post("/voice/alerts/", {"alert_language": "en"}).status_code == 403
    assert strict.post("/voice/alerts/test/").status_code == 403
    assert CareSettings.objects.get(owner=alice).alert_language == "ko"
    # Bob's settings page shows his own (empty) settings.
    assert "daughter@example.org" not in text_of(signed_in(bob).get("/voice/alerts/"))


def test_send_a_test_alert_really_sends_mail_through_the_worker(worker, smtp_server, alice):
    address = "test-alert-daughter@example.org"
    client = signed_in(alice)
    client.post("/voice/alerts/", {"alert_email": address, "alert_language": "ko"})
    response = client.post("/voice/alerts/test/", follow=True)
    assert "시험 알림을 보내는 중입니다: test-alert-daughter@example.org" in text_of(response)
    message = smtp_server.wait_for(address, 1)[0]
    assert str(message["Subject"]).strip() == "[CarePill] 시험 알림"
    assert "알림이 제대로 설정되었습니다" in message.get_content()
    # Without any address the button says what to do.
    no_address = signed_in(alice)
    CareSettings.objects.filter(owner=alice).update(alert_email="")
    alice.email = ""
    alice.save()
    assert "먼저 알림 받을 이메일을 정해 주세요" in text_of(no_address.post("/voice/alerts/test/", follow=True))


def test_the_alert_page_says_what_became_of_each_recent_alert(db, alice, bob):
    now = timezone.now()
    for owner, recipient, status in ((alice, "daughter@example.org", "sent"), (alice, "son@example.org", "failed"),
                                     (bob, "bob-family@example.org", "sent")):
        CareAlert.objects.create(owner=owner, kind="dose.missed", channel="email", subject_key=f"dose:{recipient}",
                                 not_before=now, recipient=recipient, status=status)
    page = text_of(signed_in(alice).get("/voice/alerts/"))
    assert "알림 재생 안 됨 → daughter@example.org: 보냄" in page
    assert "알림 재생 안 됨 → son@example.org: 보내지 못했습니다: 주소와 메일 설정을 확인해 주세요" in page
    assert "bob-family@example.org" not in page
    carol = User.objects.create_user(username="carol")
    assert "아직 보낸 알림이 없습니다." in text_of(signed_in(carol).get("/voice/alerts/"))
