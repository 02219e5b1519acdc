"""The beat's care tick with an injected clock: dose windows, alerts sent once (also across two
concurrent runs and after a crash between the send and its record), quiet hours, zones across a day
boundary, the silent Pi and its return. Mail goes through Django's SMTP backend to a real SMTP server
on 127.0.0.1 (tests/smtp_server.py); webhooks to a real HTTP receiver."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
import uuid
import zoneinfo
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from voice_tts.models import AccessToken, CareAlert, CareSettings, Dose, ReminderPhrase
from voice_tts.services import care_alerts
from voice_tts.services.care_alerts import care_alert_send, care_tick
from voice_tts.services.doses import dose_confirm, doses_schedule
from voice_tts.services.phrases import phrase_create
from voice_tts.services.plays import phrase_play_record
from voice_tts.services.tokens import device_create
from voice_tts.services.webhooks import webhook_secret_get

SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")
UTC = dt.UTC


def at(day: dt.date, hhmm: str, zone: dt.tzinfo = SEOUL) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), zone).astimezone(UTC)


def household(name: str, *, zone: str = "", times: tuple[str, ...] = ("08:00",), device: bool = True,
              **care: Any) -> tuple[User, ReminderPhrase, str]:
    """A user with a reminder made a week ago, a Pi, and an alert address of its own."""
    address = f"{name}-{uuid.uuid4().hex[:8]}@example.org"
    user = User.objects.create_user(username=f"{name}-{uuid.uuid4().hex[:6]}", email=address)
    CareSettings.objects.create(owner=user, timezone=zone, **care)
    phrase = phrase_create(owner_id=user.id, text=f"{name}의 아침 약 드실 시간입니다", times=list(times))
    ReminderPhrase.objects.filter(id=phrase.id).update(created_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    phrase.refresh_from_db()
    if device:
        token, _ = device_create(owner_id=user.id, name="거실 Pi")
        AccessToken.objects.filter(id=token.id).update(last_seen_at=dt.datetime(2026, 12, 1, tzinfo=UTC))
    return user, phrase, address


def send_due(now: dt.datetime) -> list[str]:
    """What a worker would do with the tick's messages: send each due alert (the tasks' service)."""
    due = CareAlert.objects.filter(status=CareAlert.Status.PENDING, not_before__lte=now).order_by("id")
    return [care_alert_send(alert_id=alert.id, now=now) for alert in due]


DAY = dt.date(2026, 12, 7)


def test_windows_close_into_missed_and_unconfirmed_with_one_mail_each(db, smtp_server):
    # Contact kept fresh: this test is about doses, not a silent Pi.
    alice, phrase, address = household("alice", times=("08:00", "12:00", "20:00"))
    AccessToken.objects.filter(owner=alice).update(last_seen_at=at(DAY, "23:00"))
    doses_schedule(now=at(DAY, "00:01"))
    # 08:00 played (twice) and never confirmed; 12:00 played and confirmed; 20:00 never played.
    for key, minute in (("a", "08:00"), ("b", "08:05")):
        phrase_play_record(owner_id=alice.id, phrase_id=phrase.id, key=key, played_at=at(DAY, minute), outcome="played",
                           source="cache", scheduled_date=DAY, scheduled_time="08:00")
    phrase_play_record(owner_id=alice.id, phrase_id=phrase.id, key="c", played_at=at(DAY, "12:00"), outcome="played",
                       source="cache", scheduled_date=DAY, scheduled_time="12:00")
    dose_confirm(owner_id=alice.id, phrase_id=phrase.id, local_date=DAY, local_time="12:00",
                 confirmed_at=at(DAY, "12:01"), key="c:confirm")

    assert care_tick(now=at(DAY, "08:29")).unconfirmed == 0  # inside the 30 minutes
    assert care_tick(now=at(DAY, "08:31")).unconfirmed == 1
    assert care_tick(now=at(DAY, "08:32")).unconfirmed == 0  # closed once
    assert send_due(at(DAY, "08:32")) == ["sent"]
    assert send_due(at(DAY, "08:33")) == []
    summary = care_tick(now=at(DAY, "20:31"))
    assert (summary.unconfirmed, summary.missed) == (0, 1)  # 12:00 was confirmed
    send_due(at(DAY, "20:31"))

    states = {d.local_time: d.state for d in Dose.objects.filter(owner=alice, local_date=DAY)}
    assert states == {"08:00": "unconfirmed", "12:00": "confirmed", "20:00": "missed"}
    unconfirmed, missed = smtp_server.wait_for(address, 2)
    assert subject(unconfirmed) == "[CarePill] 08:00 약 알림을 확인하지 않으셨습니다"
    text = unconfirmed.get_content()
    assert "alice의 아침 약 드실 시간입니다" in text and "2번 재생" in text and "2026-12-07 08:00" in text
    assert "https://voice.example.test/voice/" in text
    assert subject(missed) == "[CarePill] 20:00 약 알림이 재생되지 않았습니다"
    assert "재생되지 않았습니다" in missed.get_content()


def test_a_household_without_a_pi_sees_missed_doses_but_gets_no_mail(db, smtp_server):
    alice, _, address = household("nopi", device=False)
    doses_schedule(now=at(DAY, "00:01"))
    assert care_tick(now=at(DAY, "09:00")).missed == 1
    assert Dose.objects.get(owner=alice, local_date=DAY).state == "missed"
    assert not CareAlert.objects.filter(owner=alice).exists()


def test_two_concurrent_ticks_raise_one_alert_per_dose(transactional_db):
    households = [household(f"h{n}") for n in range(3)]
    for user, _, _ in households:
        AccessToken.objects.filter(owner=user).update(last_seen_at=at(DAY, "08:59"))
    doses_schedule(now=at(DAY, "00:01"))
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def tick() -> None:
        try:
            start.wait()
            care_tick(now=at(DAY, "09:00"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for user, _, _ in households:
        assert list(CareAlert.objects.filter(owner=user).values_list("kind", flat=True)) == ["dose.missed"]


def test_a_crash_between_send_and_record_never_sends_twice(db, smtp_server, monkeypatch):
    alice, _, address = household("crash")
    AccessToken.objects.filter(owner=alice).update(last_seen_at=at(DAY, "08:59"))
    doses_schedule(now=at(DAY, "00:01"))
    care_tick(now=at(DAY, "09:00"))
    alert = CareAlert.objects.get(owner=alice)
    real_send = care_alerts.EmailMessage.send

    def send_then_die(message: Any, *args: Any, **kwargs: Any) -> int:
        real_send(message, *args, **kwargs)
        raise SystemExit("worker killed after the SMTP server took the message")  # a crash, simulated

    monkeypatch.setattr(care_alerts.EmailMessage, "send", send_then_die)
    with pytest.raises(SystemExit):
        care_alert_send(alert_id=alert.id, now=at(DAY, "09:00"))
    monkeypatch.undo()
    assert len(smtp_server.wait_for(address, 1)) == 1
    # The task is redelivered (acks_late) and the tick runs again: neither sends it again.
    assert care_alert_send(alert_id=alert.id, now=at(DAY, "09:01")) == "sending"
    care_tick(now=at(DAY, "09:05"))
    assert care_tick(now=at(DAY, "09:11")).stale_sends == 1
    alert.refresh_from_db()
    assert alert.status == "unknown" and alert.attempts == 1
    assert send_due(at(DAY, "09:12")) == []
    assert len(smtp_server.to(address)) == 1


def test_a_refused_smtp_connection_is_retried_later_and_sent_once(db, smtp_server, settings):
    alice, _, address = household("retry")
    AccessToken.objects.filter(owner=alice).update(last_seen_at=at(DAY, "08:59"))
    doses_schedule(now=at(DAY, "00:01"))
    care_tick(now=at(DAY, "09:00"))
    alert = CareAlert.objects.get(owner=alice)
    with socket_closed() as closed_port:
        settings.EMAIL_PORT = closed_port
        assert care_alert_send(alert_id=alert.id, now=at(DAY, "09:00")) == "pending"
    settings.EMAIL_PORT = smtp_server.port
    alert.refresh_from_db()
    assert alert.not_before == at(DAY, "09:01") and "ConnectionRefusedError" in alert.error
    assert send_due(at(DAY, "09:00")) == []  # waits for its backoff
    assert send_due(at(DAY, "09:01")) == ["sent"]
    assert len(smtp_server.wait_for(address, 1)) == 1


class socket_closed:  # noqa: N801 - used as a context manager
    """A port on 127.0.0.1 that nothing listens on (bound, never listening: refused)."""

    def __enter__(self) -> int:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()


def test_quiet_hours_hold_alerts_until_they_end(db, smtp_server):
    alice, _, address = household("quiet", times=("22:30",), quiet_start=dt.time(22), quiet_end=dt.time(7))
    AccessToken.objects.filter(owner=alice).update(last_seen_at=at(DAY, "23:59"))
    doses_schedule(now=at(DAY, "00:01"))
    care_tick(now=at(DAY, "23:01"))
    alert = CareAlert.objects.get(owner=alice)
    assert alert.not_before == at(DAY + dt.timedelta(days=1), "07:00")
    assert care_tick(now=at(DAY, "23:30")).dispatched == 0
    assert send_due(at(DAY + dt.timedelta(days=1), "06:59")) == []
    assert send_due(at(DAY + dt.timedelta(days=1), "07:00")) == ["sent"]
    assert len(smtp_server.wait_for(address, 1)) == 1


def test_household_zones_and_the_day_boundary(db):
    # 23:50 in Los Angeles is 16:50 the next day in Seoul: the dose is on the household's date,
    # and its window closes after local midnight.
    user, phrase, _ = household("la", zone="America/Los_Angeles", times=("23:50",))
    la = zoneinfo.ZoneInfo("America/Los_Angeles")
    now = dt.datetime.combine(DAY, dt.time(12), la)
    doses_schedule(now=now)
    dose = Dose.objects.get(owner=user, local_date=DAY)
    assert dose.scheduled_for == dt.datetime.combine(DAY, dt.time(23, 50), la)
    assert dose.scheduled_for.astimezone(SEOUL).date() == DAY + dt.timedelta(days=1)
    assert care_tick(now=dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(0, 19), la)).missed == 0
    assert care_tick(now=dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(0, 21), la)).missed == 1
    # Spring forward in Los Angeles (2027-03-14, 02:00 -> 03:00): 02:30 is due at the jump.
    jump_day = dt.date(2027, 3, 14)
    ReminderPhrase.objects.filter(id=phrase.id).update(times=["02:30"])
    doses_schedule(now=dt.datetime.combine(jump_day, dt.time(0, 30), la))
    skipped = Dose.objects.get(owner=user, local_date=jump_day)
    assert skipped.scheduled_for == dt.datetime.combine(jump_day, dt.time(3), la)


def test_a_silent_pi_alerts_once_with_its_last_contact_and_once_more_when_back(db, smtp_server):
    alice, _, address = household("silent", times=())
    last = at(DAY, "08:00")
    AccessToken.objects.filter(owner=alice).update(last_seen_at=last)
    assert care_tick(now=at(DAY, "09:29")).silent == 0  # 89 minutes
    assert care_tick(now=at(DAY, "09:31")).silent == 1
    assert care_tick(now=at(DAY, "10:31")).silent == 0
    send_due(at(DAY, "10:31"))
    silent = smtp_server.wait_for(address, 1)[0]
    assert subject(silent) == "[CarePill] Pi가 응답하지 않습니다"
    assert "마지막 연결: 2026-12-07 08:00" in silent.get_content()
    AccessToken.objects.filter(owner=alice).update(last_seen_at=at(DAY, "11:00"))
    assert care_tick(now=at(DAY, "11:01")).back == 1
    assert care_tick(now=at(DAY, "11:02")).back == 0
    send_due(at(DAY, "11:02"))
    assert subject(smtp_server.wait_for(address, 2)[1]) == "[CarePill] Pi가 다시 연결되었습니다"


def test_webhook_alerts_are_signed_and_typed(db, smtp_server, receiver):
    alice, _, address = household("hook")
    CareSettings.objects.filter(owner=alice).update(alert_webhook_url=receiver.url, alert_language="en")
    AccessToken.objects.filter(owner=alice).update(last_seen_at=at(DAY, "08:59"))
    doses_schedule(now=at(DAY, "00:01"))
    care_tick(now=at(DAY, "09:00"))
    assert sorted(send_due(at(DAY, "09:00"))) == ["sent", "sent"]  # mail and webhook
    mail = smtp_server.wait_for(address, 1)[0]
    assert subject(mail) == "[CarePill] The 08:00 reminder did not play"
    receiver.wait_for(1)
    delivery = receiver.deliveries[0]
    secret = webhook_secret_get(owner_id=alice.id).secret
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{delivery.headers['webhook-id']}.{delivery.headers['webhook-timestamp']}.".encode() + delivery.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert delivery.headers["webhook-signature"] == f"v1,{expected}"
    event = json.loads(delivery.body)
    assert event["type"] == "dose.missed"
    assert event["data"]["dose"]["state"] == "missed" and event["data"]["dose"]["text"].startswith("hook")


def test_two_households_never_get_each_other_s_alerts(db, smtp_server):
    alice, _, alice_address = household("alice2")
    bob, _, bob_address = household("bob2", times=("10:00",))
    for user in (alice, bob):
        AccessToken.objects.filter(owner=user).update(last_seen_at=at(DAY, "08:59"))
    doses_schedule(now=at(DAY, "00:01"))
    care_tick(now=at(DAY, "09:00"))
    send_due(at(DAY, "09:00"))
    assert len(smtp_server.wait_for(alice_address, 1)) == 1
    assert smtp_server.to(bob_address) == []
    assert not CareAlert.objects.filter(owner=bob).exists()
    assert all(recipient == [alice_address] for recipient in smtp_server.recipients if alice_address in recipient)


def subject(message: Any) -> str:
    # A folded, encoded Subject (RFC 2047) reads back with the fold's leading space.
    return str(message["Subject"]).strip()
